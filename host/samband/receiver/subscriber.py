"""The receiver on the broker: Ingest (samband.receiver.ingest) behind a paho
MQTT client, for `samband receive` and the rigs.

It subscribes with a shared subscription ($share/<group>/samband/+/up and
.../status), so that several receivers split the hubs' batches, hands each
message to Ingest on one worker thread, publishes the acknowledgement to
samband/<hub>/ack after the commit and only then PUBACKs the message to the
broker (manual acks: a receiver that dies before its commit gets the batch
again). A database that fails for a while parks a hub's batches in its retry
queue (samband.receiver.retry). Split from ingest.py, which stays free of MQTT
so that the fleet's NATS receivers and the fuzzers use the same Ingest.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cbor2

from samband.errors import SambandError
from samband.receiver.ingest import encode_ack

if TYPE_CHECKING:
    from samband.receiver.ingest import Ingest
    from samband.receiver.retry import RetryQueues

log = logging.getLogger("samband.receiver.subscriber")

SHARE = "$share/receivers/"
UP = "samband/+/up"
STATUS = "samband/+/status"


class Receiver:
    """Ingest behind a paho MQTT client (TLS, shared subscription, manual PUBACKs).

    Every message is PUBACKed exactly once: after its batch is committed,
    refused or quarantined, or when it is parked in a hub's retry queue
    (samband.receiver.retry: a transient database failure), so that no
    failing batch holds one of the broker's in-flight slots."""

    BUSY_TIMEOUT = 0.5  # s one statement waits for a database lock before it counts as a transient failure

    def __init__(self, ingest: Ingest, host: str, port: int, ca: str | Path | None = None, user: str = "receiver",
                 password: str | None = None, group: str = "receivers", client_id: str | None = None,
                 on_status: Callable[[str, dict[str, Any]], None] | None = None,
                 retry: RetryQueues | None = None) -> None:
        import paho.mqtt.client as mqtt

        from samband.receiver.retry import RetryQueues
        self.ingest = ingest
        self.group = group
        self.on_status = on_status
        self.retry = retry or RetryQueues()
        try:
            ingest.store.busy_timeout(self.BUSY_TIMEOUT)
        except NotImplementedError:
            pass
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                             protocol=mqtt.MQTTv311, clean_session=True, manual_ack=True)
        if user:
            self.c.username_pw_set(user, password)
        if ca:
            self.c.tls_set(ca_certs=str(ca))
        self.c.on_connect = self._connected
        self.c.on_message = self._message
        self.c.reconnect_delay_set(0.2, 5)
        self.host, self.port = host, port
        self.queue = queue.Queue()
        self.connected = threading.Event()
        self.connects = 0
        self._worker = None
        self._stop = False
        self._time_sent = {}  # hub -> monotonic time of its last time reply

    def _connected(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc == 0:
            self.connects += 1
            client.subscribe(SHARE.replace("receivers", self.group) + UP, qos=1)
            client.subscribe(SHARE.replace("receivers", self.group) + STATUS, qos=0)
            self.connected.set()
        else:
            log.warning("broker refused the receiver: %s", rc)

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.queue.put(msg)

    def _puback(self, msg: Any) -> None:
        if msg.qos:
            self.c.ack(msg.mid, msg.qos)

    def _work(self) -> None:
        import time
        while not self._stop:
            now = time.monotonic()
            try:
                msg = self.queue.get(timeout=self.retry.wait(now, 0.2))
            except queue.Empty:
                msg = None
            if msg is not None:
                try:
                    self._new(msg)
                except Exception:  # a bug, not input: logged, and the slot is not held
                    self.ingest.counters["errors"] += 1
                    log.exception("message on %s", msg.topic)
                    self._puback(msg)
            self._retry_due()

    def _new(self, msg: Any) -> None:
        import time
        parts = msg.topic.split("/")
        if len(parts) != 3 or parts[0] != "samband" or parts[2] not in ("up", "status"):
            self.ingest.counters["bad-topic"] += 1
            self._puback(msg)
            return
        hub_hex = parts[1]
        if parts[2] == "status":
            st = self._status(hub_hex, msg.payload)
            if st is not None and self.on_status:
                self.on_status(hub_hex, st)
            if st is not None and "tq" in st:
                self._time_reply(hub_hex, st["tq"])
            self._puback(msg)
            return
        if hub_hex in self.retry:  # behind this hub's parked batches, in order
            self.retry.park(hub_hex, msg, time.monotonic())
            self._puback(msg)
            return
        if not self._attempt(hub_hex, msg):
            self.retry.park(hub_hex, msg, time.monotonic(), failed=True)
        self._puback(msg)

    TIME_EVERY = 10.0  # s: at most one time reply per hub this often, whatever it asks

    def _time_reply(self, hub_hex: str, tq: Any) -> None:
        """The receiver's UTC time for a hub that asked (its status carried tq):
        a CBOR map {"tq": q, "t": ms} on the hub's ack topic (docs/uplink.md).
        Only hubs that ask get it (an older hub would count it as a bad ack),
        and at most one per TIME_EVERY per hub (a hub cannot make us flood)."""
        import time
        now = time.monotonic()
        last = self._time_sent.get(hub_hex)
        if last is not None and now - last < self.TIME_EVERY:
            self.ingest.counters["time-limited"] += 1
            return
        if len(self._time_sent) > 10000:
            self._time_sent.clear()
        self._time_sent[hub_hex] = now
        self.c.publish(f"samband/{hub_hex}/ack", cbor2.dumps({"tq": tq, "t": time.time_ns() // 1000000}), qos=0)
        self.ingest.counters["time-replies"] += 1

    def _status(self, hub_hex: str, payload: bytes) -> dict[str, Any] | None:
        # A status message is only a hint (the next one follows in seconds):
        # if the database cannot take it now, it is counted and dropped.
        from samband.receiver.store import is_transient
        try:
            return self.ingest.status(hub_hex, payload)
        except Exception as e:
            if not is_transient(e):
                raise
            self.ingest.counters["status-dropped"] += 1
            return None

    def _retry_due(self) -> None:
        import time
        for hub_hex in self.retry.due(time.monotonic()):
            msg = self.retry.head(hub_hex)
            self.ingest.counters["retries"] += 1
            if self._attempt(hub_hex, msg):
                self.retry.done(hub_hex)
            else:
                self.retry.failed(hub_hex, time.monotonic())

    def _attempt(self, hub_hex: str, msg: Any) -> bool:
        """Ingest one batch and send the hub its ack; False on a transient database failure."""
        from samband.receiver.store import is_transient
        try:
            acks = self.ingest.batch(hub_hex, msg.payload)
        except Exception as e:
            if is_transient(e):
                self.ingest.counters["transient"] += 1
                log.warning("batch from %s: database unavailable (%s), retrying", hub_hex, e)
                return False
            # not transient and not input (Ingest quarantines input): a bug; counted, logged,
            # dropped here; the hub sends the records again after its ack timeout
            self.ingest.counters["errors"] += 1
            log.exception("batch from %s", hub_hex)
            return True
        if acks:
            self.c.publish(f"samband/{hub_hex}/ack", encode_ack(acks), qos=1)
        return True

    def report(self) -> dict[str, Any]:
        """Counters, unknown hubs and parked batches, for `samband receive`'s status."""
        out = self.ingest.report()
        out["parked"] = self.retry.hubs()
        out["parked_dropped"] = self.retry.dropped
        out["connects"] = self.connects
        return out

    def start(self, timeout: float = 10) -> Receiver:
        self._stop = False
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()
        self.c.connect_async(self.host, self.port, keepalive=10)
        self.c.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise SambandError(f"receiver: no connection to the broker at {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self._stop = True
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()
        if self._worker:
            self._worker.join(5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
