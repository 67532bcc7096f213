"""The receiver: sealed batches from the broker into the database, then acks.

Subscribes with a shared subscription ($share/receivers/samband/+/up), so
that several receivers split the hubs' batches. For each batch: the hub id
from the topic (the broker's ACL ties it to the hub's login), the records
opened with the depot's keys (samband.seal.Opener: authenticity, replay),
readings decoded, stored in one transaction (de-duplicated by (hub, seq)),
and only after the commit the acknowledgement goes to samband/<hub>/ack
and the MQTT PUBACK to the broker (manual acks: a receiver that dies before
its commit gets the batch again from the broker). Wire formats: docs/uplink.md.
"""

import argparse
import csv
import json
import logging
import queue
import struct
import sys
import threading
import time
from collections import Counter

import cbor2

from samband.errors import SambandError

log = logging.getLogger("samband.receiver")

SHARE = "$share/receivers/"
UP = "samband/+/up"
STATUS = "samband/+/status"


# The ack format belongs to the hub's uplink (docs/uplink.md); the receiver uses the same code.
from hub.uplink import decode_ack, encode_ack  # noqa: E402,F401


def _record_seq(item, epochs):
    # seq of a record from the batch's own epoch headers (for refused replays)
    for ep in epochs:
        if ep.number & 0xFF == item[1]:
            return ep.base + struct.unpack(">H", item[2:4])[0]
    return None


def decode_reading(data):
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


class Ingest:
    """Batch in, (ack seqs, summary) out; no MQTT here (the benchmark drives it directly)."""

    def __init__(self, opener, store, on_reading=None):
        self.opener = opener
        self.store = store
        self.on_reading = on_reading
        self.counters = Counter()
        self._restore()

    def _restore(self):
        # What the database holds is what this receiver has accepted: a restarted
        # receiver refuses re-sent records as replayed (and acknowledges them)
        # instead of opening them again. The primary key stays the backstop.
        from samband.seal import _Seen
        for hub_id, hub in self.opener.hubs.items():
            spans = self.store.spans(hub_id.hex())
            if spans:
                hub.seen = _Seen(spans)

    def batch(self, hub_hex, payload):
        """Open, store, commit; return the seqs to acknowledge (possibly empty)."""
        from samband.seal import Rejected, unbatch
        try:
            hub_id = bytes.fromhex(hub_hex)
            if not hub_id:
                raise ValueError
        except ValueError:
            self.counters["bad-topic"] += 1
            return []
        try:
            res = self.opener.open_batch(hub_id, payload)
        except Rejected as e:
            self.counters[e.reason] += 1
            self.store.reject(hub_hex, {e.reason: 1})
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
        rows = []
        for o in res.opened:
            try:
                r = decode_reading(o.plaintext)
            except ValueError:
                rejected["bad-reading"] += 1
                continue
            rows.append((o.seq, o.epoch, r))
        try:
            stored, dup = self.store.store(hub_hex, rows, dict(rejected))
        except Exception:
            # Nothing of this batch is stored and nothing is acknowledged; the
            # hub sends it again and it must then be opened, not refused.
            self.opener.forget(hub_id, [o.seq for o in res.opened])
            self.counters["store-failed"] += 1
            raise
        self.counters.update(rejected)
        self.counters["stored"] += stored
        self.counters["duplicates"] += dup
        self.counters["batches"] += 1
        acks = [o.seq for o in res.opened]
        if replays:
            acks += self.store.have(hub_hex, replays)  # already in the database: the hub may forget them
        if self.on_reading:
            for seq, ep, r in rows:
                self.on_reading(hub_hex, seq, r)
        return acks


class Receiver:
    """Ingest behind a paho MQTT client (TLS, shared subscription, manual PUBACKs)."""

    def __init__(self, ingest, host, port, ca=None, user="receiver", password=None,
                 group="receivers", client_id=None, on_status=None):
        import paho.mqtt.client as mqtt
        self.ingest = ingest
        self.group = group
        self.on_status = on_status
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
        self._worker = None
        self._stop = False

    def _connected(self, client, userdata, flags, rc, props=None):
        if rc == 0:
            client.subscribe(SHARE.replace("receivers", self.group) + UP, qos=1)
            client.subscribe(SHARE.replace("receivers", self.group) + STATUS, qos=0)
            self.connected.set()
        else:
            log.warning("broker refused the receiver: %s", rc)

    def _message(self, client, userdata, msg):
        self.queue.put(msg)

    def _work(self):
        while not self._stop:
            try:
                msg = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            parts = msg.topic.split("/")
            try:
                if len(parts) == 3 and parts[2] == "up":
                    acks = self.ingest.batch(parts[1], msg.payload)
                    if acks:
                        self.c.publish(f"samband/{parts[1]}/ack", encode_ack(acks), qos=1)
                elif len(parts) == 3 and parts[2] == "status":
                    self._status(parts[1], msg.payload)
            except Exception:
                log.exception("batch from %s", msg.topic)
                continue  # no PUBACK: the broker hands it to us (or another receiver) again
            if msg.qos:
                self.c.ack(msg.mid, msg.qos)

    def _status(self, hub_hex, payload):
        import cbor2
        try:
            st = cbor2.loads(payload)
            backlog = int(st.get("pending"))
        except Exception:
            self.ingest.counters["bad-status"] += 1
            return
        self.ingest.store.status(hub_hex, backlog)
        if self.on_status:
            self.on_status(hub_hex, st)

    def start(self, timeout=10):
        self._stop = False
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()
        self.c.connect_async(self.host, self.port, keepalive=10)
        self.c.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise SambandError(f"receiver: no connection to the broker at {self.host}:{self.port}")
        return self

    def stop(self):
        self._stop = True
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()
        if self._worker:
            self._worker.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- CLI

def _print_reading(hub_hex, seq, r):
    from hub import reading as rd
    n = rd.to_named(r)
    v = rd.value(r) if not isinstance(r.get(3), list) else "[%d samples]" % len(r[3])
    prio = {1: " ALARM", 2: " telemetry"}.get(r.get(12, 0), "")
    print(f"{time.strftime('%H:%M:%S')} hub {hub_hex} #{seq:<6} {n.get('dev', '?')} mdc {r[2]} "
          f"{v} {r.get(5, '')}{prio}", flush=True)


def cmd_receive(args):
    from samband.depot import Depot
    from samband.store import open_store
    depot = Depot(args.depot, create=False)
    store = open_store(args.db)
    ing = Ingest(depot.opener(), store, None if args.quiet else _print_reading)
    password = args.password
    if args.password_file:
        password = open(args.password_file).read().strip()
    rx = Receiver(ing, args.host, args.port, args.ca, args.user, password, args.group)
    rx.start()
    print(f"samband receive: {args.host}:{args.port}, database {args.db}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        rx.stop()
        store.close()


def cmd_readings(args):
    from samband.store import open_store
    store = open_store(args.db)
    if args.status:
        json.dump(store.hubs(), sys.stdout, indent=1)
        print()
        return
    rows = store.readings(args.hub, args.device, args.type, args.since, args.until, args.limit)
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=None)
        print()
    else:
        keys = ["hub", "seq", "dev", "mdc", "val", "exp", "unit", "dts", "hts", "prio", "rec", "epoch", "received"]
        w = csv.writer(sys.stdout)
        w.writerow(keys)
        for r in rows:
            w.writerow([json.dumps(r[k]) if isinstance(r.get(k), (list, dict)) else r.get(k, "") for k in keys])


def add_parser(sub):
    p = sub.add_parser("receive", help="receive sealed readings from the broker into a database")
    p.add_argument("--depot", help="depot folder (keys of the receiver and the hubs)")
    p.add_argument("--db", default="samband.db", help="SQLite path or postgresql:// URL")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--ca", help="CA certificate (PEM) of the broker")
    p.add_argument("--user", default="receiver")
    p.add_argument("--password")
    p.add_argument("--password-file")
    p.add_argument("--group", default="receivers", help="shared subscription group")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_receive)
    q = sub.add_parser("readings", help="query and export stored readings (JSON, CSV)")
    q.add_argument("--db", default="samband.db")
    q.add_argument("--hub")
    q.add_argument("--device", help="device address as printed, e.g. 11:22:33:44:55:66")
    q.add_argument("--type", type=int, help="MDC code")
    q.add_argument("--since", type=int, help="hub time, ms since 1970")
    q.add_argument("--until", type=int)
    q.add_argument("--limit", type=int)
    q.add_argument("--format", choices=("json", "csv"), default="json")
    q.add_argument("--status", action="store_true", help="per-hub status instead of readings")
    q.set_defaults(func=cmd_readings)
