"""The receiver's core: sealed batches into the database, and the seqs to acknowledge.

For each batch: the hub id from the topic (the broker's ACL ties it to the
hub's login), the records opened with the depot's keys
(samband.receiver.opener.Opener: authenticity, replay), readings decoded,
stored in one transaction (de-duplicated by (hub, seq)); what Ingest.batch
returns is acknowledged only after that commit. Wire formats: docs/uplink.md.

Ingest needs no broker: the MQTT receiver (samband.receiver.subscriber.Receiver:
shared subscription, ack after commit, manual PUBACKs), the fleet's NATS
receivers (receiver/fleet.py), the fuzzers and the benchmarks all drive it.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cbor2

if TYPE_CHECKING:
    from samband.reading import Reading
    from samband.receiver.opener import Epoch, Opened, Opener
    from samband.receiver.store import Prepared, Quarantined, Store

log = logging.getLogger("samband.receiver.ingest")



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
