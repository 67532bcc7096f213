"""The receiver: sealed batches from the broker into the database, then acks.

Subscribes with a shared subscription ($share/receivers/samband/+/up), so
that several receivers split the hubs' batches. For each batch: the hub id
from the topic (the broker's ACL ties it to the hub's login), the records
opened with the depot's keys (samband.receiver.opener.Opener: authenticity, replay),
readings decoded, stored in one transaction (de-duplicated by (hub, seq)),
and only after the commit the acknowledgement goes to samband/<hub>/ack
and the MQTT PUBACK to the broker (manual acks: a receiver that dies before
its commit gets the batch again from the broker). Wire formats: docs/uplink.md.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cbor2

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.reading import Reading
    from samband.receiver.opener import Epoch, Opened, Opener
    from samband.receiver.retry import RetryQueues
    from samband.receiver.store import Prepared, Quarantined, Store

log = logging.getLogger("samband.receiver.ingest")

SHARE = "$share/receivers/"
UP = "samband/+/up"
STATUS = "samband/+/status"


# The ack format belongs to the hub's uplink (docs/uplink.md); the receiver uses the same code.
from hub.uplink import decode_ack, encode_ack  # noqa: E402,F401


def _record_seq(item: bytes, epochs: list[Epoch]) -> int | None:
    # seq of a record from the batch's own epoch headers (for refused replays)
    for ep in epochs:
        if ep.number & 0xFF == item[1]:
            return ep.base + struct.unpack(">H", item[2:4])[0]
    return None


def decode_reading(data: bytes) -> dict[int, Any]:
    """hub.reading.decode, faster: cbor2 (C) decodes, and a re-encoding that
    gives back the same bytes proves the input was the canonical CBOR the hub
    writes; anything else goes through the hub's own strict decoder, which
    accepts it or says what is wrong. Same result, same errors, a fifth of the
    time (receiver ingest is budgeted at 20,000 readings/s per core)."""
    from hub import reading as rd
    try:
        r = cbor2.loads(data)
        if type(r) is dict and cbor2.dumps(r, canonical=True) == data:
            return rd.validate(r)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError):
        pass
    return rd.decode(data)


STATUS_MAX_BYTES = 256
MAX_STRANGERS = 1000  # unknown hubs remembered by name for the status; the rest only counted


def parse_status(payload: object) -> dict[str, Any] | None:
    """A hub's status message (docs/uplink.md) as {"pending": n, "alarms": m,
    "tq": q} (alarms and tq may be absent; tq asks for the receiver's time),
    plus "ota" (versions.parse_ota: running version, slot, update state) or,
    when that entry breaks a bound, "ota_error" saying how; likewise "cfg"
    (versions.parse_cfg: the signed configs it runs) or "cfg_error";
    or None if it breaks a bound: at most
    STATUS_MAX_BYTES bytes, a CBOR map, counters integers 0 <= n < 2**63
    (the database column is signed 64-bit). Other keys are ignored (newer
    hubs may add some). Pure: any decoder failure is a None, never raised."""
    if not isinstance(payload, (bytes, bytearray)) or len(payload) > STATUS_MAX_BYTES:
        return None
    try:
        st = cbor2.loads(bytes(payload))
    except Exception:  # cbor2 raises several types (CBORDecodeError, ValueError, RecursionError, ...)
        return None
    if type(st) is not dict:
        return None
    out = {}
    for key, need in (("pending", True), ("alarms", False), ("tq", False)):
        v = st.get(key)
        if v is None and not need:
            continue
        if type(v) is not int or not 0 <= v < 2 ** 63:
            return None
        out[key] = v
    if st.get("ota") is not None:  # the running version and update state (receiver/versions.py)
        from samband.receiver.versions import BadOta, parse_ota
        try:
            out["ota"] = parse_ota(st["ota"])
        except BadOta as e:  # the backlog is still good: kept, the ota entry refused and counted
            out["ota_error"] = str(e)
    if st.get("cfg") is not None:
        from samband.receiver.versions import BadOta, parse_cfg
        try:
            out["cfg"] = parse_cfg(st["cfg"])
        except BadOta as e:
            out["cfg_error"] = str(e)
    return out


def hub_of_topic(hub_hex: str) -> bytes | None:
    """The hub id bytes of a topic's hub part (lowercase hex, 1..255 bytes), or None."""
    if not 2 <= len(hub_hex) <= 510 or hub_hex != hub_hex.lower():
        return None
    try:
        return bytes.fromhex(hub_hex)
    except ValueError:
        return None


class Ingest:
    """Batch in, (ack seqs, summary) out; no MQTT here (the benchmark and the
    fuzz test drive it directly).

    batch() never raises on input: a batch is stored, refused or its
    records quarantined, and counted. It raises only when the database fails
    in a way that may pass (store.is_transient): nothing of the batch is then
    stored or remembered, and the caller tries it again later.

    on_reading(hub_hex, seq, reading), if given, is called after the commit with
    each reading of the batch as a samband.reading.Reading (typed fields, not keys)."""

    def __init__(self, opener: Opener, store: Store,
                 on_reading: Callable[[str, int, Reading], None] | None = None) -> None:
        self.opener = opener
        self.store = store
        self.on_reading = on_reading
        self.counters = Counter()
        self.strangers = Counter()  # hub hex -> batches from a login the depot does not know
        self._bad_ota_logged = set()  # hubs whose refused ota entry was logged (once each)
        self._restore()

    def _restore(self) -> None:
        # What the database holds is what this receiver has accepted: a restarted
        # receiver refuses re-sent records as replayed (and acknowledges them)
        # instead of opening them again. The primary key stays the backstop.
        from samband.receiver.opener import Seen
        for hub_id, hub in self.opener.hubs.items():
            spans = self.store.spans(hub_id.hex())
            if spans:
                hub.seen = Seen(spans)

    def _stranger(self, hub_hex: str) -> None:
        # A broker login the depot does not know: counted, no hubs row (the
        # table lists the depot's hubs, and anyone with a login could fill it).
        self.counters["unknown-hub"] += 1
        self.opener.counters["unknown-hub"] += 1
        if hub_hex in self.strangers or len(self.strangers) < MAX_STRANGERS:
            self.strangers[hub_hex] += 1
        if self.strangers[hub_hex] == 1:
            log.warning("batch from hub %s, which is not in the depot: refused", hub_hex)

    def status(self, hub_hex: str, payload: bytes) -> dict[str, Any] | None:
        """Record a hub's status message; returns it parsed, or None (counted)."""
        hub_id = hub_of_topic(hub_hex)
        if hub_id is None:
            self.counters["bad-topic"] += 1
            return None
        st = parse_status(payload)
        if st is None:
            self.counters["bad-status"] += 1
            return None
        if hub_id not in self.opener.hubs:
            self.counters["unknown-hub-status"] += 1
            return None
        if "ota_error" in st:
            self.counters["bad-ota-status"] += 1
            if hub_hex not in self._bad_ota_logged and len(self._bad_ota_logged) < MAX_STRANGERS:
                self._bad_ota_logged.add(hub_hex)
                log.warning("status from hub %s: ota entry refused: %s", hub_hex, st["ota_error"])
        if "cfg_error" in st:
            self.counters["bad-cfg-status"] += 1
            if hub_hex not in self._bad_ota_logged and len(self._bad_ota_logged) < MAX_STRANGERS:
                self._bad_ota_logged.add(hub_hex)
                log.warning("status from hub %s: cfg entry refused: %s", hub_hex, st["cfg_error"])
        self.store.status(hub_hex, st["pending"], st.get("ota"), st.get("cfg"))
        return st

    def batch(self, hub_hex: str, payload: bytes) -> list[int]:
        """Open, store, commit; return the seqs to acknowledge (possibly empty)."""
        from samband.reading import Reading
        from samband.receiver.opener import Rejected, unbatch
        from samband.receiver.store import Unstorable, is_transient
        hub_id = hub_of_topic(hub_hex)
        if hub_id is None:
            self.counters["bad-topic"] += 1
            return []
        if hub_id not in self.opener.hubs:
            self._stranger(hub_hex)
            return []
        try:
            res = self.opener.open_batch(hub_id, payload)
        except Rejected as e:  # the batch as a whole: nothing of it was accepted
            self.store.reject(hub_hex, {e.reason: 1})
            self.counters[e.reason] += 1
            return []
        rejected = Counter()
        replays = []
        items = None
        for i, e in res.rejected:
            rejected[e.reason] += 1
            if e.reason == "replayed":
                if items is None:
                    items = unbatch(payload)
                q = _record_seq(items[i], res.epochs)
                if q is not None:
                    replays.append(q)
        rows, held = [], []
        for o in res.opened:
            try:
                r = Reading.from_valid(decode_reading(o.plaintext))
            except Exception as e:  # authentic but not a reading: the hub's decoder may raise anything on junk
                rejected["bad-reading"] += 1
                held.append((o.seq, o.epoch, "bad-reading", str(e), o.plaintext))
                continue
            try:
                rows.append(self.store.prepare(o.seq, o.epoch, r))
            except Unstorable as e:
                rejected[e.reason] += 1
                held.append((o.seq, o.epoch, e.reason, str(e), o.plaintext))
        try:
            stored, dup = self._commit(hub_hex, rows, rejected, held, res.opened)
        except Exception as e:
            # Nothing of this batch is stored and nothing is acknowledged; when
            # it comes again it must be opened, not refused as a replay.
            self.opener.forget(hub_id, [o.seq for o in res.opened])
            self.counters["store-failed"] += 1
            if not is_transient(e):
                log.exception("batch from %s: the database failed in an unexpected way", hub_hex)
            raise
        self.counters.update(rejected)
        self.counters["stored"] += stored
        self.counters["duplicates"] += dup
        self.counters["quarantined"] += len(held)
        self.counters["batches"] += 1
        acks = [o.seq for o in res.opened]
        if replays:
            acks += self.store.have(hub_hex, replays)  # already kept: the hub may forget them
        if self.on_reading:
            for row in rows:
                try:
                    self.on_reading(hub_hex, row[0], row[2])
                except Exception:
                    log.exception("on_reading")
        return acks

    def _commit(self, hub_hex: str, rows: list[Prepared], rejected: Counter, held: list[Quarantined],
                opened: list[Opened]) -> tuple[int, int]:
        """One transaction for the batch. If the database refuses it for a
        reason that is not transient (a constraint, a value the driver will
        not take that prepare() did not foresee), the readings are tried one
        by one and the ones refused again are quarantined, so that one bad
        reading neither blocks nor sinks its batch."""
        from samband.receiver.store import is_transient
        try:
            return self.store.store_prepared(hub_hex, rows, dict(rejected), quarantine=held)
        except Exception as e:
            if is_transient(e):
                raise
            first = e
        log.warning("batch from %s refused by the database (%s): storing its readings one by one", hub_hex, first)
        by_seq = {o.seq: o for o in opened}
        stored = dup = 0
        more = list(held)
        for row in rows:
            seq, ep = row[0], row[1]
            try:
                s, d = self.store.store_prepared(hub_hex, [row])
                stored, dup = stored + s, dup + d
            except Exception as e:
                if is_transient(e):
                    raise
                rejected["unstorable"] += 1
                more.append((seq, ep, "unstorable", f"{type(e).__name__}: {e}", by_seq[seq].plaintext))
        held[:] = more
        self.store.store_prepared(hub_hex, [], dict(rejected), quarantine=more)
        return stored, dup

    def report(self) -> dict[str, Any]:
        """The receiver's own counters and the unknown hubs, for its status."""
        return {"counters": dict(self.counters), "unknown_hubs": dict(self.strangers)}


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
