"""A batch that fails can never block others (issue 10, Deliver 2).

Real Mosquitto (TLS, per-hub logins and ACLs), the real receiver
(samband.receiver.subscriber.Receiver) and a real SQLite file; the hubs are paho
clients that publish sealed batches once and never again, so whatever
reaches the database got there through the receiver's own handling.

* 50 poison batches from one hub with its own valid key (every record
  authentic, its MDC 2**64-1: no signed 64-bit column holds it) among the
  genuine batches of two other hubs: the poison is quarantined, counted and
  acknowledged; every genuine reading is stored once and acknowledged; the
  receiver never reconnects. Before: each poison batch raised in SQLite,
  was never PUBACKed and held one of the broker's in-flight slots; after 20
  of them no hub's batch reached the receiver.
* A 60 s database outage (another connection holds an exclusive lock)
  while three hubs send: nothing lost, nothing twice, no reconnect. Before:
  the failing batches were left unacknowledged at the broker, which does not
  send them again on the same session.
"""

import sqlite3
import time

import pytest
from receiver_kit import Depot, MqttHub, glucose

from samband.receiver.ingest import Ingest
from samband.receiver.store import open_store
from samband.receiver.subscriber import Receiver
from samband.rig.broker import RECEIVER_USER, Broker

HUBS = ["00005a4d0a01", "00005a4d0a02", "00005a4d0a03"]
POISON = "00005a4d0bad"
WAIT = 120  # s: a deadline for a condition, not a speed figure


@pytest.fixture
def world(tmp_path):
    depot = Depot(HUBS + [POISON])
    broker = Broker(tmp_path / "broker")
    pw = {u: broker.add_hub(u) for u in HUBS + [POISON]}
    broker.start()
    db = tmp_path / "r.db"
    store = open_store(db)
    rx = Receiver(Ingest(depot.opener(), store), "localhost", broker.port, broker.ca_pem, RECEIVER_USER,
                  broker.users[RECEIVER_USER])
    rx.start()
    hubs = {}
    try:
        for u in HUBS + [POISON]:
            hubs[u] = MqttHub(broker, u, pw[u])
        yield depot, broker, rx, store, hubs, db
    finally:
        for h in hubs.values():
            h.close()
        rx.stop()
        store.close()
        broker.stop()


def wait(cond, what):
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def stored(db, hub):
    c = sqlite3.connect(str(db))
    try:
        return [q for (q,) in c.execute("SELECT seq FROM readings WHERE hub = ? ORDER BY seq", (hub,))]
    finally:
        c.close()


class Feed:
    """Glucose records of some hubs, sealed with the depot's keys and published in batches:
    sent[u] is every seq hub u sent, in order."""

    def __init__(self, depot, hubs, us):
        self.hubs = hubs
        self.sealers = {u: depot.sealer(u) for u in us}
        self.sent = {u: [] for u in us}

    def batch(self, u, n):
        s, sent = self.sealers[u], self.sent[u]
        first = len(sent) + 1
        sent.extend(range(first, first + n))
        self.hubs[u].send([s.header] + [s.seal(q, glucose(q)) for q in range(first, first + n)])


def test_fifty_poison_batches_block_nobody(world):
    depot, broker, rx, store, hubs, db = world
    good = HUBS[:2]
    feed = Feed(depot, hubs, good)
    sent = feed.sent
    poison = depot.sealer(POISON)
    for i in range(50):
        hubs[POISON].send([poison.header, poison.seal(i + 1, glucose(i + 1, mdc=2 ** 64 - 1))])
        for u in good:
            feed.batch(u, 3)
    for u in good:
        wait(lambda u=u: hubs[u].got() >= set(sent[u]), f"hub {u}'s acks")
        assert stored(db, u) == sent[u]
    wait(lambda: hubs[POISON].got() == set(range(1, 51)), "the poison hub's acks")
    assert stored(db, POISON) == []
    view = open_store(db)  # not the receiver's connection: its thread may be mid-transaction
    try:
        held = view.quarantined(POISON)
        st = {h["hub"]: h for h in view.hubs()}
    finally:
        view.close()
    assert [q["seq"] for q in held] == list(range(1, 51)) and {q["reason"] for q in held} == {"out-of-range"}
    assert st[POISON]["quarantined"] == 50 and st[POISON]["rejected"] == {"out-of-range": 50}
    assert rx.connects == 1 and rx.ingest.counters["errors"] == 0


def test_sixty_second_outage_loses_nothing(world):
    depot, broker, rx, store, hubs, db = world
    feed = Feed(depot, hubs, HUBS)
    sent = feed.sent

    def send_round():
        for u in HUBS:
            feed.batch(u, 4)

    send_round()
    wait(lambda: all(hubs[u].got() >= set(sent[u]) for u in HUBS), "acks before the outage")
    before = {u: len(sent[u]) for u in HUBS}
    lock = sqlite3.connect(str(db), timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            send_round()
            time.sleep(0.5)
        # the outage was real: nothing sent during it was acknowledged
        assert not any(hubs[u].got() & set(sent[u][before[u]:]) for u in HUBS)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    send_round()
    for u in HUBS:
        wait(lambda u=u: hubs[u].got() >= set(sent[u]), f"hub {u}'s acks after the outage")
        assert stored(db, u) == sent[u]  # every seq, once, in order
    assert rx.ingest.counters["transient"] > 0  # stores failed and were retried in the receiver
    assert rx.connects == 1 and rx.ingest.counters["errors"] == 0 and rx.retry.dropped == 0
