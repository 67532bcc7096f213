"""The receiver never raises on input (issue 10, Deliver 3).

Property: every batch and status message, however malformed, goes through
the whole ingest (topic, opener, de-duplication, decoding, Store.prepare,
SQLite) and is stored, refused or quarantined, and counted; nothing raises.
At the end the counters agree with the database.

Over 100,000 inputs: hypothesis draws, per example, a seed and a list of
mutations of authentic batches (bit flips, cut and inserted bytes, lengths
re-encoded non-minimally or too long, items dropped, repeated and swapped,
batches over the size and item limits), plus authentic records whose
plaintext is junk or holds values no database column takes (MDC 2**64-1,
a seq above 2**63-1) and status messages with out-of-range counters. Each
example expands to PER_EXAMPLE inputs from its seed, so that hypothesis'
own overhead per example does not dominate (the test has to run in well
under a minute on one core: in-memory SQLite, no broker).
"""

import random
import struct

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from receiver_kit import DEV, Depot, glucose

from hub import reading as rd
from hub.seal import MAX_BATCH_BYTES, MAX_BATCH_ITEMS, SEQ_MAX, batch
from samband.receiver.ingest import Ingest
from samband.receiver.store import open_store

HUB_A, HUB_B, STRANGER = "00005a4d0f01", "00005a4d0f02", "00005a4d0fff"
EXAMPLES = 400
PER_EXAMPLE = 250
TOPICS = [HUB_A] * 6 + [HUB_B] * 3 + [STRANGER, "ZZ", "", "00005A4D0F01", "0" * 600]


def _plaintexts(r):
    """Authentic plaintexts: good readings, and ones that can never be stored."""
    out = [glucose(q) for q in range(5)]
    out += [
        rd.encode(rd.make(1, DEV, 2 ** 64 - 1, 5, [1, 1])),  # MDC beyond a signed 64-bit column
        rd.encode(rd.make(1, DEV, 0x2711C, 5, [1, 1], hts=2 ** 64 - 1)),
        cbor2.dumps({0: 1, 1: DEV, 2: 0x2711C, 3: 2 ** 70, 9: [1, 1]}),  # a bignum
        cbor2.dumps({0: 1, 1: DEV, 2: 0x2711C, 3: [1, -2 ** 64, float("nan")], 9: [1, 1], 13: [1, 2, 3]}),
        rd.encode(rd.make(1, DEV, 0x2711C, 5, [1, 1], unit="mg\0dL")),
        cbor2.dumps({0: 1}), cbor2.dumps([1, 2, 3]), b"", b"\xff" * 7, cbor2.dumps("x" * 300),
        b"\x81" * 5000,  # nested arrays: a decoder's recursion
        cbor2.dumps({0: 1, 1: DEV, 2: 3, 3: 4, 9: [1, 1], 16: {b"k": 1}}),
        cbor2.dumps({0: 1, 1: DEV, 2: 3, 3: 4, 9: [1, 1], 5: "\ud800".encode("utf-8", "surrogatepass")}),
    ]
    out += [bytes(r.getrandbits(8) for _ in range(r.randint(0, 64))) for _ in range(10)]
    return out


def _leb(n, width=None):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n or (width and len(out) + 1 < width):
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _items(payload):
    items, i = [], 1
    while i < len(payload):
        n = shift = 0
        while True:
            b = payload[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        items.append(payload[i:i + n])
        i += n
    return items


def _raw(items, widths):
    out = bytearray(b"\x13")
    for it, w in zip(items, widths):
        out += _leb(len(it), w) + it
    return bytes(out)


class Corpus:
    """Authentic batches of two hubs, in several epochs (one with its base just
    below SEQ_MAX, whose later offsets overflow it, one with a base beyond)."""

    def __init__(self, seed=1):
        r = random.Random(seed)
        self.depot = Depot([HUB_A, HUB_B])
        plains = _plaintexts(r)
        self.batches = []
        self.good = set()  # (hub, seq) of every genuine reading: stored once whatever follows
        for uid in (HUB_A, HUB_B):
            eps = [self.depot.sealer(uid, number=n, base=b)
                   for n, b in ((1, 0), (2, 10_000), (258, 20_000), (3, SEQ_MAX - 40),
                                (4, SEQ_MAX + 1), (5, 2 ** 64 - 70_000))]
            for ep in eps:
                q = ep.base
                for _ in range(12):
                    recs = []
                    for _ in range(r.randint(1, 6)):
                        q += r.randint(1, 30)
                        off = q - ep.base
                        if off > 0xFFFF:
                            break
                        odd = r.random() < 0.35
                        plain = r.choice(plains) if odd else glucose(q % 10_000)
                        if not odd and q <= SEQ_MAX and ep.base <= SEQ_MAX:
                            self.good.add((uid, q))
                        recs.append(ep.seal(q, plain) if q < 2 ** 64 else _overflowing(ep, off, plain))
                    self.batches.append((uid, batch([ep.header] + recs)))

    def mutate(self, payload, ops, r):
        items = _items(payload)
        widths = [None] * len(items)
        data = None
        for op in ops:
            if op == "flip" and items:
                k = r.randrange(len(items))
                it = bytearray(items[k])
                if it:
                    it[r.randrange(len(it))] ^= 1 << r.randrange(8)
                items[k] = bytes(it)
            elif op == "drop" and items:
                k = r.randrange(len(items))
                del items[k], widths[k]
            elif op == "dup" and items:
                k = r.randrange(len(items))
                items.insert(k, items[k])
                widths.insert(k, None)
            elif op == "swap" and len(items) > 1:
                a, b = r.randrange(len(items)), r.randrange(len(items))
                items[a], items[b] = items[b], items[a]
            elif op == "leb" and items:
                widths[r.randrange(len(widths))] = r.choice([2, 3, 4, 5])  # not minimal, or too long
            elif op == "offset" and items:  # a record's seq offset rewritten (tag then fails)
                k = r.randrange(len(items))
                if items[k][:1] == b"\x10" and len(items[k]) >= 4:
                    items[k] = items[k][:2] + struct.pack(">H", r.getrandbits(16)) + items[k][4:]
            elif op == "many":
                items += [b""] * (MAX_BATCH_ITEMS + 1 - len(items))
                widths += [None] * (len(items) - len(widths))
            elif op == "huge":
                items.append(bytes(MAX_BATCH_BYTES))
                widths.append(None)
        data = bytearray(_raw(items, widths))
        for op in ops:
            if op == "cut" and data:
                data = data[:r.randrange(len(data))]
            elif op == "insert":
                i = r.randrange(len(data) + 1)
                data[i:i] = bytes(r.getrandbits(8) for _ in range(r.randint(1, 4)))
            elif op == "byte" and data:
                data[r.randrange(len(data))] = r.getrandbits(8)
            elif op == "junk":
                data = bytearray(bytes(r.getrandbits(8) for _ in range(r.randint(0, 40))))
        return bytes(data)


def _overflowing(ep, off, plain):
    # a record header naming an offset past 2**64 (no tag can match: nothing seals it)
    return struct.pack(">BBH", 0x10, ep.number & 0xFF, off) + bytes(16) + plain


OPS = ["flip", "drop", "dup", "swap", "leb", "offset", "many", "huge", "cut", "insert", "byte", "junk"]
# how often each is drawn when an example expands (the costly "many" and "huge" rarely)
WEIGHTS = [8, 3, 3, 3, 3, 3, 0.3, 0.3, 3, 3, 3, 1]


def _ops(r):
    return r.choices(OPS, WEIGHTS, k=r.randint(0, 3))


def _ota(r):
    """A status's "ota" entry (docs/ota.md): well formed, or wrong in one field."""
    good = {"v": "0.2.0", "st": "fetching", "s": "a", "to": "0.3.0", "have": 3, "n": 9}
    pick = r.randrange(6)
    if pick == 0:
        return good
    bad = dict(good)
    key = r.choice(list(good))
    bad[key] = r.choice([None, -1, 2 ** 40, "x" * 40, [1], {"a": 1}, "Z!", 1.5, b"\x00"])
    return bad


def _cfg(r):
    """A status's "cfg" entry (docs/alerts.md, "Over the uplink"): well formed, or wrong in one field."""
    good = {"k": 1764633600, "l": 0, "bad": 2, "r": "forged", "x": 9}
    if r.randrange(6) == 0:
        return good
    bad = dict(good)
    key = r.choice(["k", "l", "bad", "r"])
    bad[key] = r.choice([None if key in ("k", "l") else -1, -1, 2 ** 40, "x" * 40, [1], {"a": 1}, "Z!", 1.5,
                         b"\x00"])
    return bad


def _status(r):
    pick = r.randrange(11)
    if pick == 8:
        return cbor2.dumps({"pending": r.randint(0, 10), "ota": _ota(r)})
    if pick == 9:
        return cbor2.dumps({"pending": r.randint(0, 10), "cfg": _cfg(r)})
    if pick == 0:
        return cbor2.dumps({"pending": r.randint(0, 10), "alarms": r.randint(0, 3)})
    if pick == 1:
        return cbor2.dumps({"pending": r.choice([-1, 2 ** 63, 2 ** 64 - 1, 2 ** 80, -2 ** 70])})
    if pick == 2:
        return cbor2.dumps({"pending": r.choice([1.5, "7", None, [1], {"a": 1}, True, b"1"])})
    if pick == 3:
        return cbor2.dumps({"pending": 1, "alarms": 2 ** 63})
    if pick == 4:
        return cbor2.dumps({"pending": 1, "pad": "x" * 300})  # over the size bound
    if pick == 5:
        return cbor2.dumps([1, 2])
    if pick == 6:
        return b"\x81" * 200
    if pick == 7:
        return cbor2.dumps({"pending": 3, "new": [1, 2]})  # a newer hub's extra key: fine
    return bytes(r.getrandbits(8) for _ in range(r.randint(0, 300)))


CORPUS = Corpus()
STATE = {}


def _ingest():
    if "ing" not in STATE:
        STATE["ing"] = Ingest(CORPUS.depot.opener(), open_store(":memory:"))
        STATE["n"] = 0
        # every authentic batch once, unchanged: each of its good readings is stored
        for uid, payload in CORPUS.batches:
            _one(STATE["ing"], uid, payload)
    return STATE["ing"]


def _one(ing, topic, payload):
    before = sum(ing.counters.values())
    ing.batch(topic, payload)  # must not raise
    assert sum(ing.counters.values()) > before, "a batch that left no count"
    STATE["n"] = STATE.get("n", 0) + 1


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2 ** 32 - 1), ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=4))
def test_no_input_raises(seed, ops):
    ing = _ingest()
    r = random.Random(seed)
    for i in range(PER_EXAMPLE):
        uid, payload = r.choice(CORPUS.batches)
        mine = ops if i == 0 else _ops(r)
        topic = uid if r.random() < 0.9 else r.choice(TOPICS)
        if r.random() < 0.1:
            before = sum(ing.counters.values())
            ing.status(topic, _status(r))
            assert sum(ing.counters.values()) >= before
            STATE["n"] += 1
            continue
        _one(ing, topic, CORPUS.mutate(payload, mine, r))


def test_counts_agree_with_the_database():
    """Run after the property (same module state): what was counted is what is kept."""
    ing = _ingest()
    if STATE["n"] < 100_000:  # this test alone: drive the same inputs as the property
        for seed in range(EXAMPLES):
            r = random.Random(seed)
            for _ in range(PER_EXAMPLE):
                uid, payload = r.choice(CORPUS.batches)
                _one(ing, uid, CORPUS.mutate(payload, _ops(r), r))
    assert STATE["n"] >= 100_000
    s = ing.store
    assert s.count() == ing.counters["stored"]
    assert len(s.quarantined()) == ing.counters["quarantined"]
    hubs = {h["hub"] for h in s.hubs()}
    assert hubs <= {HUB_A, HUB_B}  # no row for a hub the depot does not know
    assert ing.counters["unknown-hub"] > 0 and ing.strangers[STRANGER] > 0
    for reason in ("oversized", "malformed", "tampered", "replayed", "out-of-range", "bad-reading",
                   "bad-status", "bad-topic", "bad-ota-status", "bad-cfg-status"):
        assert ing.counters[reason] > 0, reason
    held = {q["reason"] for q in s.quarantined()}
    assert {"out-of-range", "bad-reading", "unstorable"} <= held
    # every genuine reading of the authentic batches is stored (once: the primary key)
    cur = s.conn.cursor()
    cur.execute("SELECT hub, seq FROM readings")
    assert CORPUS.good <= set(cur.fetchall())
