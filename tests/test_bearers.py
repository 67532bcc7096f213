"""The bearer manager end to end: a virtual hub (the real firmware on the
MicroPython unix port) with two bearers, each its own TCP path to a real
Mosquitto through a Relay the test can black-hole or cut, the real receiver
and its SQLite database.

tests/data/uplink_main.py runs hub.uplink.Uplink with port.bearers(config):
two `hostnet` bearers, "a" (primary, cheapest) and "b". Every test ends as
the uplink tests do: the journal drained (every record acknowledged by the
receiver) and the database holding every appended seq exactly once.
"""

import json

import flapkit
import pytest
from conftest import TESTS, firmware_tree
from test_mdns_lan import free_udp_port
from test_uplink import check_exactly_once, drained, rows

from samband.device import lan
from samband.rig.relay import Relay
from samband.rig.uplink import UplinkRig
from samband.vhub import Flash

MAIN = TESTS / "data" / "uplink_main.py"
HUB = "00005a4d00d1"
TIMEOUT = 90


@pytest.fixture
def rig(tmp_path):
    # two TLS sessions: on the unix port mbedTLS's buffers come from the MicroPython heap
    # (on an ESP32 they come from the IDF's heap), so the virtual hub needs more than 200k;
    # at 320k a handshake now and then found no room (test_cellular_netns showed it plainly),
    # which the flaps test saw as one bearer failure no cut had caused
    r = UplinkRig(tmp_path, firmware=firmware_tree(), heap="360k")
    yield r
    r.stop()


def two_bearers(rig, config, uplink=None, keepalive_a=None):
    """A hub with bearers a and b, each through its own relay; returns (hub, relay a, relay b)."""
    h = rig.add_hub(HUB, MAIN, config, uplink=uplink)
    rig.start_broker()
    ra, rb = Relay(rig.broker.port), Relay(rig.broker.port)
    flash = Flash(h.flash)
    cfg = json.loads(flash.read("/uplink.json"))
    cfg["uplink"]["bearers"] = [{"kind": "hostnet", "name": "a", "port": ra.port, "keepalive": keepalive_a},
                                {"kind": "hostnet", "name": "b", "port": rb.port}]
    flash.write("/uplink.json", json.dumps(cfg).encode())
    rig.start_receiver()
    h.vhub.start()
    return h, ra, rb


bearer = flapkit.bearer  # the hub's status entry for one bearer (its crash file checked first)


def telemetry(h):
    """[(mdc, val)] from the hub's telemetry log."""
    text = (h._read("/uplink.bearers") or b"").decode()
    out = []
    for line in text.split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "T":
            out.append((int(parts[1]), int(parts[2])))
    return out


def changes(h):
    """[(bearer index, state)] from the hub's bearer telemetry."""
    return [(v // 16, v % 16) for m, v in telemetry(h) if m == 1024 << 16 | 32]


def downs(h):
    """The hub's log lines saying why a bearer's session went down (tests/data/uplink_main.py)."""
    text = (h._read("/uplink.events") or b"").decode(errors="replace")
    return [line for line in text.split("\n") if "session down" in line]


STATES = ("off", "starting", "searching", "connecting", "up", "degraded", "failed")
UP = STATES.index("up")


def test_alarm_on_the_second_bearer_while_the_primary_is_black_holed_and_routine_moves_and_back(rig):
    total = 400
    # a's own keepalive is 6 s: the hub cannot notice its black hole for 9 s, while an
    # alarm is made every 0.8 s; b's is 2 s
    h, ra, rb = two_bearers(rig, {"total": total, "interval_ms": 40, "alarm_every": 20},
                            uplink={"keepalive": 2, "batch_age_ms": 200}, keepalive_a=6)
    try:
        rig.wait(lambda: bearer(h, "a").get("live") and bearer(h, "b").get("live"), TIMEOUT, "both bearers live")
        rig.wait(lambda: bearer(h, "a").get("sent", 0) >= 3, TIMEOUT, "routine data on bearer a")
        assert h.state()["bearer"] == "a"  # the cheapest healthy one
        # the hub asked the receiver for its time in its first status, and set its clock from it
        rig.wait(lambda: h.state()["clock"]["source"] == "receiver", TIMEOUT, "the clock set from the receiver")
        assert (1024 << 16 | 48, 2) in telemetry(h)  # MDC_HUB_CLOCK_SET, rank of the receiver
        b_sent = bearer(h, "b")["sent"]
        ra.blackhole = True
        last = max(h.appended())
        # an alarm appended after the black hole reaches the database while a is still black-holed
        def alarm_after():
            return [s for s, r in rows(rig, h.uid) if s > last and r.get("prio") == 1]
        rig.wait(alarm_after, TIMEOUT, "an alarm made after the black hole in the database")
        assert ra.blackhole and ra.swallowed > 0
        # ... before the hub knew a was dead: it went on b at once, no failover needed
        assert bearer(h, "a")["live"] and bearer(h, "a")["sessions"] == 1
        # a is noticed by its own silence and marked degraded; routine moves to b
        rig.wait(lambda: bearer(h, "a").get("state") == "degraded", TIMEOUT, "bearer a degraded")
        rig.wait(lambda: h.state()["bearer"] == "b", TIMEOUT, "routine on bearer b")
        rig.wait(lambda: bearer(h, "b")["sent"] >= b_sent + 5, TIMEOUT, "routine batches on b")
        assert (0, STATES.index("degraded")) in changes(h)
        # the black hole ends: a recovers after its successes and routine goes back to it
        ra.blackhole = False
        rig.wait(lambda: bearer(h, "a").get("state") == "up", TIMEOUT, "bearer a up again")
        a_sent = bearer(h, "a")["sent"]
        rig.wait(lambda: h.state()["bearer"] == "a" and bearer(h, "a")["sent"] >= a_sent + 3, TIMEOUT,
                 "routine back on a")
        assert changes(h)[-1] == (0, STATES.index("up"))
        rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    finally:
        ra.close()
        rb.close()
    got = check_exactly_once(rig, h)
    assert len(got) == total


FLAPS = 250  # ~0.4 s each (tests/flapkit.py); `make bench` runs 1000 (tests/bench/bench_bearers.py)


def test_bearer_flaps_lose_and_duplicate_nothing(rig):
    """FLAPS scripted flaps, a and b in turn and overlapped, while the hub
    appends readings (an alarm every 7th) all through: every cut is one
    up -> degraded -> up flap in the hub's telemetry, and the database ends
    with every appended record exactly once."""
    n, per_flap = FLAPS, 2
    total = n * per_flap + 40
    # no hysteresis here (one failure degrades, one success recovers): every cut is a
    # state flap, up -> degraded -> up, journaled each time. A cut is seen at once (the
    # session's reader wakes the manager), so the keepalive need not be short: at 2 s a
    # busy machine that held the relay or the broker for 3 s made a flap no cut had made
    # (CI: "nothing heard from the broker for 3045 ms", 126 degradations for 125 cuts)
    h, ra, rb = two_bearers(rig, {"total": total, "interval_ms": 150, "alarm_every": 7},
                            uplink=flapkit.UPLINK)
    try:
        rig.wait(lambda: flapkit.is_back(h, "a", 1) and flapkit.is_back(h, "b", 1), TIMEOUT, "both bearers live")
        # the flaps' changes are counted from here: a first session that failed on a busy
        # machine is the start's, not a cut's
        start = len(changes(h))
        per, made_at = flapkit.flap(rig, h, {"a": ra, "b": rb}, n, per_flap)
        rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
        # read before the relays close: closing them resets both sessions, which the hub
        # (woken at once) journals as one more flap each (CI: 126 degradations for 125 cuts)
        before, ch = changes(h)[:start], changes(h)[start:]
        sessions = {name: bearer(h, name)["sessions"] for name in ("a", "b")}
    finally:
        ra.close()
        rb.close()
    assert len(per) == n and ra.cuts == n // 2 and rb.cuts == n // 2
    assert [[st for b, st in before if b == i][-1] for i in (0, 1)] == [UP, UP], before  # both up when flaps began
    for i, name in ((0, "a"), (1, "b")):
        assert ch.count((i, STATES.index("degraded"))) == n // 2 and ch.count((i, UP)) == n // 2, \
            (before, ch[:8], ch[-8:], downs(h)[-4:])
        assert sessions[name] == n // 2 + 1  # one new session per cut, none lost besides
    got = check_exactly_once(rig, h)
    assert len(got) == total  # zero lost, zero duplicated
    assert h.state()["made"] == total
    # the hub was appending all through the flapping, alarms among them; it appends from its
    # boot and the flaps begin once the test sees both bearers up (600 ms, 4 readings, on a
    # busy machine): early, within the 40 readings beyond the flaps' own
    assert made_at[0] <= total - n * per_flap and made_at[n // 2] < total, made_at
    during = {r for s, (prio, r) in h.appended().items() if made_at[0] <= r < made_at[-1] and prio == 1}
    assert len(during) >= (made_at[-1] - made_at[0]) // 7 - 1


def test_the_hub_app_runs_its_provisioned_bearers_and_journals_their_changes(rig):
    """The firmware's own main.py (hub.app): bearers from /config/hub.json,
    each bearer's way up a telemetry reading of the hub itself (device
    address all zeros) that reaches the database; its status names the
    bearer carrying routine data. The first IP bearer up starts its mDNS
    responder (on a free port here), which `samband discover` reaches."""
    firmware_main = TESTS.parent / "firmware" / "main.py"
    h = rig.add_hub(HUB, firmware_main, {})
    rig.start_broker()
    ra, rb = Relay(rig.broker.port), Relay(rig.broker.port)
    flash = Flash(h.flash)
    up = json.loads(flash.read("/uplink.json"))["uplink"]
    flash.write("/config/hub.json", json.dumps({
        "uplink": dict(up, keepalive=2),
        "bearers": [{"kind": "hostnet", "name": "a", "port": ra.port},
                    {"kind": "hostnet", "name": "b", "port": rb.port}]}).encode())
    rig.start_receiver()
    mdns_port = free_udp_port()
    h.vhub.extra_env["SAMBAND_MDNS_PORT"] = str(mdns_port)
    h.vhub.start()
    code = 1024 << 16 | 32

    def changes_in_db():
        cur = rig.store.conn.cursor()
        cur.execute("SELECT reading FROM readings WHERE hub = ? ORDER BY seq", (h.uid,))
        out = [json.loads(r) for (r,) in cur.fetchall()]
        rig.store.conn.commit()
        return [r["val"] for r in out if r.get("mdc") == code]

    try:
        up_a, up_b = STATES.index("up"), 16 + STATES.index("up")
        rig.wait(lambda: up_a in changes_in_db() and up_b in changes_in_db(), TIMEOUT,
                 "both bearers' way up in the database")
        found = lan.ask("127.0.0.1", mdns_port, timeout=10)
        assert (found["hub"], found["board"], found["port"]) == (h.uid, "vhub", f"127.0.0.1:{mdns_port}")
        ra.blackhole = True
        rig.wait(lambda: 16 * 0 + STATES.index("degraded") in changes_in_db(), TIMEOUT,
                 "bearer a's degradation in the database (through b)")
    finally:
        ra.close()
        rb.close()
    got = rows(rig, h.uid)
    assert len(got) == len({s for s, _ in got})
    assert all(r["dev"] == "00:00:00:00:00:00" for _, r in got), got[:3]  # the hub itself
