# The uplink's choices without a network (hub/uplink.py), on both runtimes:
# a real journal in a scratch folder and a stand-in MQTT client that keeps
# what is published. Alarms ahead of the backlog, batches that carry their
# epoch headers, routine held back until size or age, journal acks only on
# the receiver's ack, and a resend of what was in flight after a reconnect.
import struct

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from fwtest import Scratch
from journal_util import append
from hub.journal import Journal
from hub.reading import PRIO_ALARM, PRIO_ROUTINE
from hub.seal import unbatch
from hub.uplink import Uplink, encode_ack

MPY_HEAP = "200k"


class FakeClient:
    def __init__(self):
        self.sent = []
        self.connected = True

    async def publish(self, topic, payload, qos=1, timeout_ms=0):
        self.sent.append((topic, bytes(payload)))


def header(number):
    return struct.pack(">BBIQ", 0x11, 7, number, 0) + bytes(48)


def record(number, seq, n=30):
    return struct.pack(">BBH", 0x10, number & 0xFF, seq & 0xFFFF) + bytes((seq + i) & 0xFF for i in range(n))


def uplink_in(root, **cfg):
    """A journal in root and an Uplink on it whose MQTT client keeps what it is given: (j, up)."""
    j = Journal(root, capacity=64 * 1024, segment_size=2048)
    c = {"host": "x", "hub_id": b"\x00\x00\x5a\x4d\x00\x01", "batch_bytes": 1024, "batch_age_ms": 0}
    c.update(cfg)
    up = Uplink(j, c)
    up.client = FakeClient()
    return j, up


def pump(up):
    return asyncio.run(up._pump())


def sent_seqs(up, k):
    items = unbatch(up.client.sent[k][1])
    return items, [struct.unpack(">H", it[2:4])[0] for it in items if it[0] == 0x10]


def test_alarms_first_with_their_headers():
    with Scratch("up1") as root:
        j, up = uplink_in(root)
        j.context(header(5))
        q = [append(j, lambda seq: record(5, seq), PRIO_ALARM if s == 3 else PRIO_ROUTINE) for s in range(4)]
        assert pump(up)
        items, seqs = sent_seqs(up, 0)
        assert items[0] == header(5) and seqs == [q[3]]
        items, seqs = sent_seqs(up, 1)
        assert items[0] == header(5) and seqs == q[:3]
        assert up.client.sent[0][0] == "samband/00005a4d0001/up"
        assert not pump(up)  # everything in flight: nothing sent again
        j.close()


def test_ack_moves_the_journal_and_reconnect_resends():
    with Scratch("up2") as root:
        j, up = uplink_in(root)
        j.context(header(9))
        q = [append(j, lambda seq: record(9, seq), PRIO_ROUTINE) for s in range(6)]
        pump(up)
        assert j.count() == 6  # a PUBACK is not an ack
        up._on_message(up.ack_topic, encode_ack([q[0], q[1], q[2], q[4]]))
        up._on_message("samband/other/ack", encode_ack([q[3]]))  # not ours: ignored
        up._on_message(up.ack_topic, b"\xff")  # garbage: counted
        up._handle_acks()
        assert j.count() == 2 and up.counters["acked"] == 4 and up.counters["bad_acks"] == 1
        assert up.stats()["pending"] == 2
        assert not pump(up)
        up.inflight = ({}, {})  # what a reconnect does
        assert pump(up)
        assert sent_seqs(up, 1)[1] == [q[3], q[5]]
        j.close()


def test_routine_waits_for_size_or_age_and_header_found_by_tag():
    with Scratch("up3") as root:
        j, up = uplink_in(root, batch_age_ms=60000, batch_bytes=400)
        q0 = append(j, lambda seq: record(2, seq), PRIO_ROUTINE)  # before any context: header from contexts()
        j.context(header(2))
        q1 = append(j, lambda seq: record(2, seq), PRIO_ROUTINE)
        assert not pump(up)  # young and small
        for _s in range(12):
            append(j, lambda seq: record(2, seq), PRIO_ROUTINE)
        assert pump(up)  # enough bytes
        items, seqs = sent_seqs(up, 0)
        assert items[0] == header(2) and seqs[:2] == [q0, q1]
        assert sum(len(it) for it in items) <= 400 + 70
        j.close()


def test_batches_stay_within_what_a_receiver_takes():
    # many small records in one big configured batch: the uplink splits them
    # so that no batch passes MAX_BATCH_ITEMS items or MAX_BATCH_BYTES bytes
    import sys
    from hub import seal, uplink
    assert uplink.MAX_BATCH_BYTES == seal.MAX_BATCH_BYTES and uplink.MAX_BATCH_ITEMS == seal.MAX_BATCH_ITEMS
    if sys.implementation.name != "cpython":
        return  # 500 records in one candidate list need more than the port's 200 KB test heap
    with Scratch("up9") as root:
        j, up = uplink_in(root, batch_bytes=10 ** 6)
        assert up.batch_bytes <= uplink.MAX_BATCH_BYTES // 2
        j.context(header(1))
        n = 1100  # more than MAX_BATCH_ITEMS: one batch could not hold them
        first = append(j, lambda seq: record(1, seq, 2), PRIO_ROUTINE)
        for _ in range(n - 1):
            last = append(j, lambda seq: record(1, seq, 2), PRIO_ROUTINE)
        while pump(up):
            pass
        got = []
        for k in range(len(up.client.sent)):
            data = up.client.sent[k][1]
            assert len(data) <= seal.MAX_BATCH_BYTES
            items, seqs = sent_seqs(up, k)
            assert len(items) <= seal.MAX_BATCH_ITEMS
            got += seqs
        assert len(up.client.sent) >= 2 and len(got) == n
        assert sorted(got) == [q & 0xFFFF for q in range(first, last + 1)]


def test_an_unanswered_time_request_is_asked_again_an_answered_one_not():
    from hub import cbor
    with Scratch("up10") as root:
        j, up = uplink_in(root)
        got = []
        up.on_time = lambda utc, unc: got.append((utc, unc))
        up.time_retry = 0  # (15 s on a hub: above the receiver's one reply per 10 s)
        assert cbor.loads(up._status_payload())["tq"] == 1
        assert cbor.loads(up._status_payload())["tq"] == 2  # the reply was lost: asked again
        up._on_message(up.ack_topic, cbor.dumps({"tq": 1, "t": 1796180137000}))  # late, for the first
        up._handle_acks()
        assert got == []
        up._on_message(up.ack_topic, cbor.dumps({"tq": 2, "t": 1796180137000}))
        up._handle_acks()
        assert len(got) == 1
        assert "tq" not in cbor.loads(up._status_payload())  # answered: next after time_ms (10 min)
        j.close()


def test_receiver_time_is_asked_for_and_measured_against_the_round_trip():
    from hub import cbor
    with Scratch("up9") as root:
        j, up = uplink_in(root)
        got = []
        up.on_time = lambda utc, unc: got.append((utc, unc))
        st = cbor.loads(up._status_payload())
        q = st["tq"]
        assert q == 1 and st["pending"] == 0
        assert "tq" not in cbor.loads(up._status_payload())  # asked again only after time_ms
        up._on_message(up.ack_topic, cbor.dumps({"tq": q + 5, "t": 1796180137000}))  # not our request
        up._handle_acks()
        assert got == [] and up.counters["bad_acks"] == 0
        for _ in range(2):  # the same reply heard on two bearers: taken once
            up._on_message(up.ack_topic, cbor.dumps({"tq": q, "t": 1796180137000}))
        up._handle_acks()
        assert len(got) == 1 and got[0][0] >= 1796180137000 and got[0][1] >= 1
        assert got[0][0] - 1796180137000 < got[0][1]  # half the round trip, and that is the uncertainty
        up._on_message(up.ack_topic, b"\xa1\x00")  # a broken map: counted, never raised
        up._handle_acks()
        assert up.counters["bad_times"] == 1 and up.counters["bad_acks"] == 0
        j.close()


def test_reconnect_waits_are_spread_over_the_upper_half_of_each_step():
    # hubs cut off by one outage must not all come back at the same instants (docs/deploy.md)
    from hub.ticks import backoff_ms
    from hub.uplink import BACKOFF_MS
    for fails in range(len(BACKOFF_MS) + 2):
        base = BACKOFF_MS[min(fails, len(BACKOFF_MS) - 1)]
        got = [backoff_ms(BACKOFF_MS, fails) for _ in range(200)]
        assert min(got) >= base - base // 2 and max(got) <= base, (fails, min(got), max(got))
        assert max(got) - min(got) >= base // 4, (fails, min(got), max(got))  # spread, not one instant
