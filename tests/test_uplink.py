"""The uplink end to end: virtual hubs (hub/uplink.py on the unix port, TLS to
a real Mosquitto with per-hub ACLs), the receiver (samband.receiver.ingest) and its
SQLite database, under faults.

tests/data/uplink_main.py is the hubs' main.py: it appends sealed readings
to the journal (logging "A seq prio n" to its flash) and runs the Uplink.
Every fault test ends the same way: the hub has made all its readings, its
journal has nothing pending (so every record was acknowledged by the
receiver), and the database holds every appended seq exactly once.
"""

import json
import time

import cbor2
import pytest
from conftest import TESTS
from fwtest import MemCounter
from host_kit import through_relay

from samband.receiver.opener import batch, unbatch
from samband.rig.broker import RECEIVER_USER

MAIN = TESTS / "data" / "uplink_main.py"
HUB_A = "00005a4d00c7"
HUB_B = "00005a4d00c8"
TIMEOUT = 90


def rows(rig, hub):
    cur = rig.store.conn.cursor()
    cur.execute("SELECT seq, reading FROM readings WHERE hub = ? ORDER BY seq", (hub,))
    out = [(s, json.loads(r)) for s, r in cur.fetchall()]
    rig.store.conn.commit()
    return out


def drained(rig, h, total):
    st = h.state()
    return st.get("made") == total and st.get("pending") == 0


def check_exactly_once(rig, h, cuts=0):
    """Every appended record in the database, none twice; readings made twice
    only where a power cut fell between an append and its bookkeeping."""
    got = rows(rig, h.uid)
    seqs = [s for s, _ in got]
    assert len(seqs) == len(set(seqs))
    appended = h.appended()
    missing = sorted(set(appended) - set(seqs))
    assert not missing, f"lost: {missing[:20]}"
    extra = set(seqs) - set(appended)
    assert len(extra) <= cuts, f"stored but never appended: {sorted(extra)[:20]}"
    ns = [r["rec"] for _, r in got]
    assert len(ns) - len(set(ns)) <= cuts
    for s, r in got:
        assert r["seq"] == s
        if s in appended:
            assert r["rec"] == appended[s][1]
            assert r.get("prio", 0) == appended[s][0]
    return got


def test_end_to_end_alarms_and_export(rig, capsys):
    total = 60
    h = rig.add_hub(HUB_A, MAIN, {"total": total, "alarm_every": 10, "interval_ms": 15})
    rig.start()
    rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    got = check_exactly_once(rig, h)
    assert len(got) == total
    alarms = [r for _, r in got if r.get("prio") == 1]
    assert len(alarms) == total // 10
    st = rig.store.hubs()[0]
    assert st["hub"] == HUB_A and st["stored"] == total and st["rejected"] == {}
    rig.wait(lambda: rig.store.hubs()[0]["backlog"] == 0, 10, "the hub's status report")

    from samband.cli import main
    assert main(["readings", "--db", rig.db, "--hub", HUB_A, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["seq"] for d in data] == [s for s, _ in got]
    assert main(["readings", "--db", rig.db, "--format", "csv", "--type", str(got[0][1]["mdc"]),
                 "--device", got[0][1]["dev"], "--limit", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("hub,seq,dev,mdc,val") and len(lines) == 6
    assert main(["readings", "--db", rig.db, "--status"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["stored"] == total


def test_broker_receiver_restarts_and_power_cuts(rig):
    total = 240
    h = rig.add_hub(HUB_A, MAIN, {"total": total, "alarm_every": 25, "interval_ms": 20})
    rig.start()
    vh = h.vhub
    boots = 1

    def made():
        return h.state().get("made", 0)

    rig.wait(lambda: made() >= 30, TIMEOUT, "30 readings")
    rig.broker.restart()                       # broker restart
    rig.wait(lambda: made() >= 70, TIMEOUT, "70 readings")
    rig.stop_receiver(rig.receivers[0])        # receiver restart (a backlog builds meanwhile)
    time.sleep(0.5)
    rig.start_receiver()
    rig.wait(lambda: made() >= 110, TIMEOUT, "110 readings")
    for _ in range(3):                         # hub power cuts, some before acks arrive
        vh.power_cut()
        boots += 1
        vh.wait_boots(boots, 20)
        m = made()
        rig.wait(lambda m=m: made() >= m + 15, TIMEOUT, "readings after a power cut")
    rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    got = check_exactly_once(rig, h, cuts=3)
    assert len(got) >= total
    st = h.state()
    assert st["connects"] >= 1


def test_network_cut_mid_batch(rig):
    total = 150
    h = rig.add_hub(HUB_A, MAIN, {"total": total, "interval_ms": 10, "alarm_every": 40},
                    uplink={"batch_age_ms": 400})
    proxy = through_relay(rig, h)
    try:
        for i in range(3):
            rig.wait(lambda i=i: h.state().get("made", 0) >= 30 * (i + 1), TIMEOUT, "readings")
            proxy.cut_next = 300  # the next batch of some size is cut in half
            rig.wait(lambda i=i: proxy.cuts > i, TIMEOUT, "a cut in the middle of a batch")
        rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    finally:
        proxy.close()
    got = check_exactly_once(rig, h)
    assert len(got) == total
    assert h.state()["link_lost"] >= 3


def test_silent_link_is_noticed_by_what_is_heard(rig):
    """The link goes silent without closing: the hub must notice it from
    what it no longer hears (no PINGRESP, no PUBACK within 1.5 keepalive
    periods), not from a socket that still looks open, and then reconnect
    and deliver everything exactly once."""
    total = 120
    h = rig.add_hub(HUB_A, MAIN, {"total": total, "interval_ms": 25, "alarm_every": 30},
                    uplink={"batch_age_ms": 300, "keepalive": 2})
    proxy = through_relay(rig, h)
    try:
        rig.wait(lambda: h.state().get("made", 0) >= 30 and h.state().get("connected"), TIMEOUT, "readings flowing")
        lost = h.state()["link_lost"]
        proxy.blackhole = True
        rig.wait(lambda: h.state()["link_lost"] > lost, 20, "the hub to notice the silent link")
        # noticed from silence, not from a socket error (how fast: make bench, "silent link noticed after")
        assert "nothing heard from the broker" in h.state()["error"], h.state()["error"]
        assert proxy.swallowed > 0
        proxy.blackhole = False
        rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    finally:
        proxy.close()
    got = check_exactly_once(rig, h)
    assert len(got) == total


def _paho(rig, user, password):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.tls_set(ca_certs=str(rig.broker.ca_pem))
    c.connect("localhost", rig.broker.port)
    c.loop_start()
    return c


def test_forged_replayed_tampered_and_acl(rig):
    total = 20
    a = rig.add_hub(HUB_A, MAIN, {"total": total, "interval_ms": 10})
    rig.add_hub(HUB_B, MAIN, {"total": 0})
    captured = []
    rig.start_broker()
    spy = _paho(rig, RECEIVER_USER, rig.broker.users[RECEIVER_USER])  # sees every batch, as the broker does
    spy.on_message = lambda c, u, m: captured.append((m.topic, bytes(m.payload)))
    spy.subscribe("samband/+/up", 1)
    rig.start_receiver()
    a.vhub.start()
    rig.wait(lambda: drained(rig, a, total), TIMEOUT, "hub A to drain")
    rx = rig.receivers[0]
    ups = [p for t, p in captured if t == f"samband/{HUB_A}/up"]
    assert ups
    base = rig.store.count()

    def counters():
        return {h["hub"]: h["rejected"] for h in rig.store.hubs()}

    # an attacker with hub A's broker login (or the network) re-sends, alters and forges
    thief = _paho(rig, HUB_A, a.password)
    t_up = f"samband/{HUB_A}/up"
    thief.publish(t_up, ups[0], qos=1).wait_for_publish(10)                    # replayed
    items = unbatch(ups[-1])
    rec = bytearray(items[-1])
    rec[-1] ^= 1
    thief.publish(t_up, batch(items[:-1] + [bytes(rec)]), qos=1).wait_for_publish(10)  # tampered
    forged = bytearray(items[0])
    forged[-1] ^= 0x55
    thief.publish(t_up, batch([bytes(forged)] + items[1:]), qos=1).wait_for_publish(10)  # forged header
    thief.publish(t_up, b"\x13\xff", qos=1).wait_for_publish(10)                # malformed
    # hub A may not publish as hub B: the broker drops it (the ACL), the receiver never sees it
    thief.publish(f"samband/{HUB_B}/up", ups[0], qos=1).wait_for_publish(10)
    thief.publish(f"samband/{HUB_B}/up", b"\x13\xff", qos=1).wait_for_publish(10)
    rig.wait(lambda: counters().get(HUB_A, {}).get("malformed", 0) >= 1, 20, "the malformed batch counted")
    time.sleep(0.5)
    c = counters()
    assert HUB_B not in c, c
    ca = c[HUB_A]
    assert ca.get("replayed", 0) >= 1 and ca.get("tampered", 0) >= 1 and ca.get("forged", 0) >= 1, ca
    assert rig.store.count() == base  # nothing stored from any of it
    assert rx.ingest.counters["replayed"] >= 1
    assert not [t for t, p in captured if t == f"samband/{HUB_B}/up"]

    # and hub A cannot read hub B's acknowledgements
    seen = []
    thief.on_message = lambda c_, u, m: seen.append(m.topic)
    thief.subscribe(f"samband/{HUB_B}/ack", 1)
    time.sleep(0.3)
    pub = _paho(rig, RECEIVER_USER, rig.broker.users[RECEIVER_USER])
    pub.publish(f"samband/{HUB_B}/ack", cbor2.dumps([[1, 1]]), qos=1).wait_for_publish(10)
    time.sleep(0.5)
    assert seen == []
    for cl in (thief, spy, pub):
        cl.loop_stop()
        cl.disconnect()


def test_hub_verifies_the_broker_and_its_login(rig, mpy, tmp_path):
    from samband.rig.broker import make_certs
    h = rig.add_hub(HUB_A, MAIN, {"total": 0})
    rig.start_broker()
    other = tmp_path / "other"
    make_certs(other)  # a CA that did not sign the broker's certificate

    def check(ca, password, name="localhost"):
        p = mpy(["mqtt_tls_check.py", str(rig.broker.port), str(ca), HUB_A, password, name], heap="200k", timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        return p.stdout.decode().strip()

    assert check(rig.broker.ca_der, h.password) == "OK"
    assert check(other / "ca.der", h.password).startswith("REFUSED")      # unknown server
    # not the name in its certificate
    assert check(rig.broker.ca_der, h.password, "broker.example").startswith("REFUSED")
    assert check(rig.broker.ca_der, "wrong").startswith("REFUSED")         # bad login: CONNACK 5


def test_two_receivers_split_the_load(rig):
    total = 80
    hubs = [rig.add_hub(u, MAIN, {"total": total, "interval_ms": 10, "alarm_every": 9}) for u in (HUB_A, HUB_B)]
    rig.start(receivers=2)
    for h in hubs:
        rig.wait(lambda h=h: drained(rig, h, total), TIMEOUT, f"hub {h.uid} to drain")
    for h in hubs:
        assert len(check_exactly_once(rig, h)) == total
    per = [rx.ingest.counters["batches"] for rx in rig.receivers]
    assert all(n > 0 for n in per), per


class _Keys:
    """A hub sealing with the firmware's own Sealer (under CPython) and the
    receiver's Opener for it: epoch headers collected in .headers."""

    def __init__(self):
        import os

        from nacl import bindings as nb

        from hub import seal as fs
        self.hub_id = bytes.fromhex(HUB_A)
        self.hub_sk = os.urandom(32)
        self.rpk, self.rsk = nb.crypto_box_keypair()
        self.headers = []
        self.sealer = fs.Sealer(self.hub_id, self.hub_sk, (7, self.rpk), MemCounter(), os.urandom,
                                self.headers.append)

    def seal(self, seq, r):
        from hub import reading as rd
        return self.sealer.seal(seq, rd.encode(r))

    def ingest(self, db):
        from nacl import bindings as nb

        from samband.receiver.ingest import Ingest
        from samband.receiver.opener import Opener
        from samband.receiver.store import open_store
        st = open_store(db)
        return Ingest(Opener({7: self.rsk}, {self.hub_id: nb.crypto_scalarmult_base(self.hub_sk)}), st), st


def test_restarted_receiver_knows_what_it_stored(tmp_path):
    from hub import reading as rd
    from samband.receiver.ingest import decode_ack, encode_ack

    k = _Keys()
    recs = [k.seal(q, rd.make(q, b"\0" * 7, 0x2711C, 100 + q, [1, q])) for q in range(1, 6)]
    first, second = batch(k.headers + recs[:3]), batch(k.headers + recs)

    ing, st = k.ingest(tmp_path / "r.db")
    assert sorted(ing.batch(HUB_A, first)) == [1, 2, 3]
    st.close()
    ing, st = k.ingest(tmp_path / "r.db")  # restarted: the hub, never acked, sends everything again
    assert sorted(ing.batch(HUB_A, second)) == [1, 2, 3, 4, 5]
    assert ing.counters["replayed"] == 3 and ing.counters["stored"] == 2
    assert st.count() == 5 and st.spans(HUB_A) == [(1, 5)]
    assert st.hubs()[0]["rejected"] == {"replayed": 3}
    assert decode_ack(encode_ack([5, 1, 2, 3, 4, 9])) == [1, 2, 3, 4, 5, 9]
    st.close()


def test_database_failure_loses_nothing(tmp_path):
    """A batch the database fails to store is neither acknowledged nor
    remembered as accepted: sent again, it is opened and stored, not refused
    as a replay. A meter's records fetched again under new seqs (a hub that
    lost power before remembering their record numbers) are acknowledged
    and stored once."""
    from hub import reading as rd

    k = _Keys()
    dev = b"\0\x11\x22\x33\x44\x55\x66"

    def rec(q, n):  # hub seq q carrying the meter's record n
        return k.seal(q, rd.make(q, dev, 0x2711C, 100 + n, [1, q], unit="mg/dL", rec=n, dts=1700000000 + n))

    ing, st = k.ingest(tmp_path / "r.db")
    good = st._store
    st._store = lambda *a: (_ for _ in ()).throw(OSError("disk full"))
    b1 = batch(k.headers + [rec(q, q) for q in (1, 2, 3)])
    with pytest.raises(OSError):
        ing.batch(HUB_A, b1)
    assert st.count() == 0 and ing.counters["store-failed"] == 1
    st._store = good
    assert sorted(ing.batch(HUB_A, b1)) == [1, 2, 3]  # delivered again: stored, not "replayed"
    assert ing.counters["replayed"] == 0 and st.count() == 3
    # power cut on the hub: records 2 and 3 are fetched again as seqs 4 and 5, then record 4 is new
    assert sorted(ing.batch(HUB_A, batch([rec(4, 2), rec(5, 3), rec(6, 4)]))) == [4, 5, 6]
    assert st.count() == 4 and [r["rec"] for r in st.readings()] == [1, 2, 3, 4]
    assert st.hubs()[0]["refetched"] == 2
    st.close()


def test_fast_reading_decoder_agrees_with_the_hubs():
    """The receiver decodes readings with cbor2 when the bytes are canonical and
    falls back to the hub's strict decoder otherwise: same readings, same errors."""
    from hub import reading as rd
    from samband.receiver.ingest import decode_reading
    dev = b"\0\x11\x22\x33\x44\x55\x66"
    good = [rd.make(1, dev, 0x2711C, 104, [1, 5], unit="mg/dL", rec=7, dts=1700000000, hts=1700000000123),
            rd.make(2, dev, 0x4BB8, float("nan"), [1, 6], unit="Cel"),
            rd.make(3, dev, 0x20100, list(range(-70, 3)), [2, 7], unit="uV", period=7692, hts=1)]
    for r in good:
        data = rd.encode(r)
        a, b = decode_reading(data), rd.decode(data)
        assert repr(a) == repr(b)  # (repr: NaN != NaN)
    data = rd.encode(good[0])
    bad = [data[:-1],                        # truncated
           data + b"\x00",                   # trailing byte
           b"\x19\x00\x01",                  # not a map
           b"\xa1\x00\x01",                  # a map without the required fields
           b"\xa5" + data[1:]]               # a map header that lies about its size
    for blob in bad:
        errs = []
        for f in (decode_reading, rd.decode):
            try:
                f(blob)
                errs.append(None)
            except ValueError as e:
                errs.append((type(e), str(e)))
        assert errs[0] == errs[1] and errs[0] is not None, (blob, errs)
