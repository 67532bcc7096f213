"""A receiver of a fleet: batches from a NATS JetStream work queue into the database.

On a clustered broker (rig/cluster.py; docs/uplink.md, "Fleet") the hubs'
batches land in the replicated stream SAMBAND_UP, each hub's in one of 8
lanes (a hash of its id). Every lane has a durable consumer that lets one
batch out at a time to the receivers' queue group: whichever receiver
takes it, a hub's batches are stored one after the other in the order the
cluster took them, and a batch its receiver does not ack within `ack_wait`
(it died, or its node did) goes to another, ahead of the lane's next. The
order of work is the same as Receiver's (ingest.py), with the same Ingest
underneath:

    deliver -> Ingest.batch (open, store, COMMIT) -> publish the hub's ack -> JetStream ack

So the hub's ack still leaves only after the database commit; the
JetStream ack last means a receiver that dies anywhere before it has the
batch delivered again, and the store's (hub, seq) key makes that second
storing a counted duplicate that is acknowledged again. The hub's ack is a
plain NATS publish on samband.<hub>.ack, which the MQTT gateway delivers at
QoS 0: if it is lost (the hub's node dies), the hub sends the batch again
after its ack timeout and gets its ack then (the records are refused as
replays or counted as duplicates, and acknowledged either way).

A transient database failure (store.is_transient) naks the batch with a
growing delay instead of parking it here: JetStream keeps it, any receiver
may take it later, and its lane waits behind it (the hub's later batches
are stored after it, as subscriber.Receiver's per-hub retry queue keeps them). Status messages come through a core NATS
queue group: each goes to one receiver, none is stored by the broker (a
status is a hint, and the next follows in seconds).

Run one as a process: `python -m samband.receiver.fleet CONFIG.json`
(keys, database, servers; written by the fleet tests and benchmark).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError
from samband.receiver.ingest import encode_ack

if TYPE_CHECKING:
    from collections.abc import Callable

    from nats.aio.client import Client as Nats
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from samband.receiver.ingest import Ingest

log = logging.getLogger("samband.receiver.fleet")

# The names a fleet's cluster and its receivers agree on (rig/cluster.py writes them into the config).
STREAM = "SAMBAND_UP"
GROUP = "receivers"  # the receivers' queue group (batches and statuses)
PARTITIONS = 8  # lanes of the work queue: a hub's batches all take one, one batch in flight per lane
UP_SUBJECT = "samband.up.*.*"  # samband.up.<lane>.<hub>: what the cluster's mapping makes of samband/<hub>/up
STATUS_SUBJECT = "samband.*.status"


def consumer(lane: int) -> tuple[str, str]:
    """The durable consumer of one lane, and where it delivers (the receivers' queue group)."""
    return f"{GROUP}-{lane}", f"samband.work.{lane}"

NAK_DELAYS = (0.25, 0.5, 1, 2, 4, 5)  # s: a batch the database could not take now, by its delivery count
TIME_EVERY = 10.0  # s: at most one time reply per hub this often (as subscriber.Receiver)


async def ensure_queue(js: JetStreamContext, replicas: int = 3, ack_wait: float = 5.0,
                       lanes: int = PARTITIONS) -> None:
    """The stream and the lanes' consumers, made if missing (the first receiver of a fleet
    makes them; the others find them). Work-queue retention: a batch is gone once acked."""
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=STREAM, subjects=[UP_SUBJECT], retention=RetentionPolicy.WORK_QUEUE,
                                         storage=StorageType.FILE, num_replicas=replicas,
                                         max_msg_size=131072))
    for lane in range(lanes):
        name, deliver = consumer(lane)
        try:
            await js.consumer_info(STREAM, name)
        except NotFoundError:
            await js.add_consumer(STREAM, ConsumerConfig(
                durable_name=name, filter_subject=UP_SUBJECT.replace("*", str(lane), 1),
                deliver_subject=deliver, deliver_group=GROUP, ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ack_wait, max_deliver=-1, max_ack_pending=1))


class FleetReceiver:
    """Ingest behind the lanes' JetStream consumers; start()/stop() or a context manager.
    Its asyncio loop runs in a thread; every database call runs in one more (the
    store's connection is used by that thread alone)."""

    def __init__(self, ingest: Ingest, servers: list[str], ca: str | Path | None = None, user: str = "receiver",
                 password: str | None = None, ack_wait: float = 5.0, replicas: int = 3, lanes: int = PARTITIONS,
                 name: str | None = None) -> None:
        self.ingest = ingest
        self.servers = list(servers)
        self.ca, self.user, self.password = ca, user, password
        self.ack_wait, self.replicas, self.lanes = ack_wait, replicas, lanes
        self.name = name
        self.ready = threading.Event()
        self.error = None
        self.reconnects = 0
        self._stop = False
        self._thread = None
        self._loop = None
        self._nc = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-db")
        self._time_sent = {}
        try:
            ingest.store.busy_timeout(0.5)
        except NotImplementedError:
            pass

    # -- the loop -------------------------------------------------------------------
    async def _connect(self) -> Nats:
        import nats

        async def reconnected() -> None:
            self.reconnects += 1

        async def error(e: Exception) -> None:  # nats-py prints a traceback for each by default; one line, counted
            self.ingest.counters["nats-errors"] += 1
            log.debug("nats: %r", e)

        ctx = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        # A few tries per node at first, so that a wrong address or a cluster that is not there
        # is an error within seconds; once connected, reconnects go on for ever (a node may die).
        nc = await nats.connect(servers=self.servers, tls=ctx, user=self.user, password=self.password,
                                name=self.name, connect_timeout=2, reconnect_time_wait=0.2,
                                max_reconnect_attempts=3, allow_reconnect=True,
                                reconnected_cb=reconnected, error_cb=error)
        nc.options["max_reconnect_attempts"] = -1
        return nc

    async def _main(self) -> None:
        nc = await self._connect()
        self._nc = nc
        js = nc.jetstream(timeout=5)
        end = time.monotonic() + 30
        while True:  # a cluster that has just started (or lost a node) may still be electing
            try:
                await ensure_queue(js, self.replicas, self.ack_wait, self.lanes)
                break
            except Exception:
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(0.3)
        for lane in range(self.lanes):
            # one task per subscription: a receiver works on several lanes at once, each in order
            await nc.subscribe(consumer(lane)[1], queue=GROUP, cb=self._batch)
        await nc.subscribe(STATUS_SUBJECT, queue=GROUP, cb=self._status)
        await nc.flush()
        self.ready.set()
        while not self._stop:
            await asyncio.sleep(0.1)
        await nc.drain()

    async def _db_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _batch(self, m: Msg) -> None:
        from samband.receiver.store import is_transient
        nc = self._nc
        parts = m.subject.split(".")  # samband.up.<lane>.<hub>
        if len(parts) != 4:
            self.ingest.counters["bad-topic"] += 1
            await m.ack()
            return
        hub_hex = parts[3]
        try:
            acks = await self._db_call(self.ingest.batch, hub_hex, m.data)
        except Exception as e:
            if is_transient(e):
                self.ingest.counters["transient"] += 1
                n = m.metadata.num_delivered if m.metadata else 1
                await m.nak(delay=NAK_DELAYS[min(n, len(NAK_DELAYS)) - 1])
                return
            # not input (Ingest quarantines input): a bug; counted, logged, dropped from the queue;
            # the hub sends the records again after its ack timeout
            self.ingest.counters["errors"] += 1
            log.exception("batch from %s", hub_hex)
            await m.ack()
            return
        if acks:
            await nc.publish(f"samband.{hub_hex}.ack", encode_ack(acks))
        await m.ack()

    async def _status(self, m: Msg) -> None:
        import cbor2

        from samband.receiver.store import is_transient
        parts = m.subject.split(".")
        if len(parts) != 3:
            self.ingest.counters["bad-topic"] += 1
            return
        hub_hex = parts[1]
        try:
            st = await self._db_call(self.ingest.status, hub_hex, m.data)
        except Exception as e:
            if not is_transient(e):
                self.ingest.counters["errors"] += 1
                log.exception("status from %s", hub_hex)
                return
            self.ingest.counters["status-dropped"] += 1
            return
        if st is not None and "tq" in st:
            now = time.monotonic()
            last = self._time_sent.get(hub_hex)
            if last is not None and now - last < TIME_EVERY:
                self.ingest.counters["time-limited"] += 1
                return
            if len(self._time_sent) > 10000:
                self._time_sent.clear()
            self._time_sent[hub_hex] = now
            await self._nc.publish(f"samband.{hub_hex}.ack",
                                   cbor2.dumps({"tq": st["tq"], "t": time.time_ns() // 1000000}))
            self.ingest.counters["time-replies"] += 1

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except Exception as e:
            self.error = e
            if self.ready.is_set():  # a failure at start is start()'s to report, in one line
                log.exception("fleet receiver")
        finally:
            self.ready.set()
            self._loop.close()

    # -- life ------------------------------------------------------------------------
    def start(self, timeout: float = 40) -> FleetReceiver:
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="fleet-receiver")
        self._thread.start()
        if not self.ready.wait(timeout) or self.error is not None:
            self.stop()
            why = " ".join(str(self.error or "timed out").split()) or type(self.error).__name__
            raise SambandError(f"no work queue on the NATS cluster at {', '.join(self.servers)}: {why}; "
                               f"is the cluster running, and are --nats, --ca and the login right?")
        return self

    def stop(self) -> None:
        self._stop = True
        if self._thread:
            self._thread.join(10)
        self._db.shutdown(wait=True)

    def report(self) -> dict[str, Any]:
        out = self.ingest.report()
        out["reconnects"] = self.reconnects
        return out

    def __enter__(self) -> FleetReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def worker_config(path: str | Path, receiver_keys: dict[int, bytes], hubs: dict[str, bytes], db: str,
                  servers: list[str], ca: str | Path, password: str, user: str = "receiver", ack_wait: float = 5.0,
                  replicas: int = 3, report: str | Path | None = None, lanes: int = PARTITIONS) -> None:
    """Write what `python -m samband.receiver.fleet` needs (0600: it holds the receiver's secret key).
    report: a file the process rewrites every half second with its counters (JSON)."""
    import os
    cfg = {"report": str(report) if report else None,
           "receiver_keys": {str(k): v.hex() for k, v in receiver_keys.items()},
           "hubs": {h: pk.hex() for h, pk in hubs.items()}, "db": str(db), "servers": list(servers),
           "ca": str(ca), "user": user, "password": password, "ack_wait": ack_wait, "replicas": replicas,
           "lanes": lanes}
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)


def main(argv: list[str]) -> int:
    from samband.receiver.ingest import Ingest
    from samband.receiver.opener import Opener
    from samband.receiver.store import open_store
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s fleet receiver: %(message)s")
    cfg = json.loads(open(argv[0]).read())
    opener = Opener({int(k): bytes.fromhex(v) for k, v in cfg["receiver_keys"].items()},
                    {bytes.fromhex(h): bytes.fromhex(pk) for h, pk in cfg["hubs"].items()})
    rx = FleetReceiver(Ingest(opener, open_store(cfg["db"])), cfg["servers"], cfg["ca"], cfg["user"],
                       cfg["password"], cfg["ack_wait"], replicas=cfg["replicas"], lanes=cfg.get("lanes", PARTITIONS))
    rx.start()
    print("ready", flush=True)
    import os
    try:
        while rx._thread.is_alive():
            rx._thread.join(0.5)
            if cfg.get("report"):
                tmp = cfg["report"] + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(rx.report(), f)
                os.replace(tmp, cfg["report"])
    except KeyboardInterrupt:
        rx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
