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

from journal_util import rmtree, scratch
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


def setup(tag, **cfg):
    root = scratch(tag)
    j = Journal(root, capacity=64 * 1024, segment_size=2048)
    c = {"host": "x", "hub_id": b"\x00\x00\x5a\x4d\x00\x01", "batch_bytes": 1024, "batch_age_ms": 0}
    c.update(cfg)
    up = Uplink(j, c)
    up.client = FakeClient()
    return root, j, up


def pump(up):
    return asyncio.run(up._pump())


def sent_seqs(up, k):
    items = unbatch(up.client.sent[k][1])
    return items, [struct.unpack(">H", it[2:4])[0] for it in items if it[0] == 0x10]


def test_alarms_first_with_their_headers():
    root, j, up = setup("up1")
    try:
        j.context(header(5))
        q = [j.append(lambda seq: record(5, seq), PRIO_ALARM if s == 3 else PRIO_ROUTINE) for s in range(4)]
        assert pump(up)
        items, seqs = sent_seqs(up, 0)
        assert items[0] == header(5) and seqs == [q[3]]
        items, seqs = sent_seqs(up, 1)
        assert items[0] == header(5) and seqs == q[:3]
        assert up.client.sent[0][0] == "samband/00005a4d0001/up"
        assert not pump(up)  # everything in flight: nothing sent again
        j.close()
    finally:
        rmtree(root)


def test_ack_moves_the_journal_and_reconnect_resends():
    root, j, up = setup("up2")
    try:
        j.context(header(9))
        q = [j.append(lambda seq: record(9, seq), PRIO_ROUTINE) for s in range(6)]
        pump(up)
        assert j.count() == 6  # a PUBACK is not an ack
        up._on_message(up.ack_topic, encode_ack([q[0], q[1], q[2], q[4]]))
        up._on_message("samband/other/ack", encode_ack([q[3]]))  # not ours: ignored
        up._on_message(up.ack_topic, b"\xff")  # garbage: counted
        up._handle_acks()
        assert j.count() == 2 and up.counters["acked"] == 4 and up.counters["bad_acks"] == 1 and up.stats()["pending"] == 2
        assert not pump(up)
        up.inflight = ({}, {})  # what a reconnect does
        assert pump(up)
        assert sent_seqs(up, 1)[1] == [q[3], q[5]]
        j.close()
    finally:
        rmtree(root)


def test_routine_waits_for_size_or_age_and_header_found_by_tag():
    root, j, up = setup("up3", batch_age_ms=60000, batch_bytes=400)
    try:
        q0 = j.append(lambda seq: record(2, seq), PRIO_ROUTINE)  # before any context: header from contexts()
        j.context(header(2))
        q1 = j.append(lambda seq: record(2, seq), PRIO_ROUTINE)
        assert not pump(up)  # young and small
        for s in range(12):
            j.append(lambda seq: record(2, seq), PRIO_ROUTINE)
        assert pump(up)  # enough bytes
        items, seqs = sent_seqs(up, 0)
        assert items[0] == header(2) and seqs[:2] == [q0, q1]
        assert sum(len(it) for it in items) <= 400 + 70
        j.close()
    finally:
        rmtree(root)
