"""Ingest's decisions one by one (the fuzz test covers them in bulk):
a reading the database refuses is quarantined without sinking its batch,
a transient failure leaves nothing behind, unknown hubs get no row,
status messages are bounded."""

import sqlite3

import cbor2
import pytest
from receiver_kit import Depot, glucose

from hub.seal import batch
from samband.receiver.ingest import Ingest, parse_status
from samband.receiver.store import open_store

HUB = "00005a4d0e01"


@pytest.fixture
def kit(tmp_path):
    depot = Depot([HUB])
    st = open_store(tmp_path / "r.db")
    yield depot, Ingest(depot.opener(), st), st
    st.close()


def test_a_reading_the_database_refuses_is_quarantined_alone(kit):
    depot, ing, st = kit
    s = depot.sealer(HUB)
    real = st._store

    def picky(hub, prepared, *a, **kw):  # the driver refuses seq 2 whatever batch it is in
        if any(p[0] == 2 for p in prepared):
            raise sqlite3.IntegrityError("CHECK constraint failed")
        return real(hub, prepared, *a, **kw)

    st._store = picky
    acks = ing.batch(HUB, batch([s.header] + [s.seal(q, glucose(q)) for q in (1, 2, 3)]))
    assert sorted(acks) == [1, 2, 3]
    assert [r["seq"] for r in st.readings()] == [1, 3]
    held = st.quarantined()
    assert [(q["seq"], q["reason"]) for q in held] == [(2, "unstorable")]
    assert bytes.fromhex(held[0]["plaintext"]) == glucose(2)
    assert st.hubs()[0]["quarantined"] == 1 and st.hubs()[0]["rejected"] == {"unstorable": 1}


def test_a_transient_failure_leaves_nothing_and_the_retry_stores_all(kit):
    depot, ing, st = kit
    s = depot.sealer(HUB)
    payload = batch([s.header, s.seal(1, glucose(1)), s.seal(2, glucose(2, mdc=2 ** 64 - 1))])
    real = st._store
    st._store = lambda *a, **kw: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked"))
    with pytest.raises(sqlite3.OperationalError):
        ing.batch(HUB, payload)
    assert st.count() == 0 and st.quarantined() == []
    st._store = real
    assert sorted(ing.batch(HUB, payload)) == [1, 2]
    assert st.count() == 1 and [q["seq"] for q in st.quarantined()] == [2]
    # sent again (the ack was lost): acknowledged, nothing twice
    assert sorted(ing.batch(HUB, payload)) == [1, 2] and st.count() == 1 and len(st.quarantined()) == 1


def test_a_login_the_depot_does_not_know_gets_no_row(kit):
    depot, ing, st = kit
    stranger = Depot(["00005a4d0eee"])
    s = stranger.sealer("00005a4d0eee")
    assert ing.batch("00005a4d0eee", batch([s.header, s.seal(1, glucose(1))])) == []
    assert ing.status("00005a4d0eee", cbor2.dumps({"pending": 3})) is None
    assert st.hubs() == [] and ing.counters["unknown-hub"] == 1 and ing.strangers == {"00005a4d0eee": 1}


def test_status_fields_are_bounded():
    assert parse_status(cbor2.dumps({"pending": 2 ** 63 - 1, "alarms": 0})) == {"pending": 2 ** 63 - 1, "alarms": 0}
    assert parse_status(cbor2.dumps({"pending": 5, "later": "x"})) == {"pending": 5}
    for bad in ({"pending": 2 ** 63}, {"pending": -1}, {"pending": 1.0}, {"pending": True}, {"alarms": 1},
                {"pending": 1, "alarms": 2 ** 64}, {"pending": 1, "pad": "x" * 300}, [1]):
        assert parse_status(cbor2.dumps(bad)) is None, bad
    assert parse_status(b"\xff\x00") is None and parse_status(b"\x81" * 256) is None


def test_status_time_request_is_bounded_and_answered_at_most_every_ten_seconds():
    assert parse_status(cbor2.dumps({"pending": 1, "tq": 7})) == {"pending": 1, "tq": 7}
    for bad in ({"pending": 1, "tq": -1}, {"pending": 1, "tq": "x"}, {"pending": 1, "tq": 2 ** 63}):
        assert parse_status(cbor2.dumps(bad)) is None, bad
    from collections import Counter
    from types import SimpleNamespace

    from samband.receiver.subscriber import Receiver
    sent = []
    r = Receiver.__new__(Receiver)  # only the time reply: no broker needed
    r.ingest = SimpleNamespace(counters=Counter())
    r.c = SimpleNamespace(publish=lambda topic, payload, qos: sent.append((topic, cbor2.loads(payload), qos)))
    r._time_sent = {}
    import time
    before = time.time_ns() // 1000000
    r._time_reply("00005a4d0001", 7)
    r._time_reply("00005a4d0001", 8)   # within 10 s: not answered (a hub cannot make us flood)
    r._time_reply("00005a4d0002", 1)
    assert [(t, m["tq"], q) for t, m, q in sent] == [("samband/00005a4d0001/ack", 7, 0),
                                                     ("samband/00005a4d0002/ack", 1, 0)]
    assert before <= sent[0][1]["t"] <= time.time_ns() // 1000000
    assert r.ingest.counters["time-limited"] == 1 and r.ingest.counters["time-replies"] == 2


def test_status_beyond_a_column_is_counted_not_raised(kit):
    depot, ing, st = kit
    assert ing.status(HUB, cbor2.dumps({"pending": 2 ** 63})) is None and ing.counters["bad-status"] == 1
    assert ing.status(HUB, cbor2.dumps({"pending": 7})) == {"pending": 7} and st.hubs()[0]["backlog"] == 7


def test_a_batch_stopped_half_way_leaves_nothing_accepted(kit):
    depot, ing, st = kit
    s = depot.sealer(HUB)
    payload = batch([s.header] + [s.seal(q, glucose(q)) for q in (1, 2, 3)])
    o = ing.opener
    real, calls = o._accept_record, []

    def third_fails(hub_id, record, after=None):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("out of memory")  # not input: e.g. the process at its limit
        return real(hub_id, record, after)

    o._accept_record = third_fails
    with pytest.raises(MemoryError):
        o.open_batch(bytes.fromhex(HUB), payload)
    o._accept_record = real
    assert sorted(ing.batch(HUB, payload)) == [1, 2, 3] and st.count() == 3  # opened, not "replayed"
