"""The virtual hub's bearers as real interfaces: the hub (the real firmware
on the unix port) runs in a network namespace with one veth per bearer
toward a "cloud" namespace that holds Mosquitto (samband.rig.netns); each
bearer's sockets are bound to its own veth (SO_BINDTODEVICE), and faults are
the kernel's: nftables drops (a black hole), an interface set down. The
receiver and its SQLite database stay in the host's namespace.

The hub namespace's preferred route to the broker is bearer a's, so a
session of bearer b that was not pinned would leave by a and die in a's
black hole: b carrying the alarms while a is black-holed is the pinning
at work (and the broker's log shows b's sessions coming from b's address).

Needs root (namespaces, veths, nftables); skips with the reason otherwise.
"""

import json
import re

import pytest
from conftest import TESTS, firmware_tree
from test_bearers import STATES, bearer, changes
from test_uplink import check_exactly_once, drained, rows

from samband.rig.uplink import UplinkRig
from samband.vhub import Flash

MAIN = TESTS / "data" / "uplink_main.py"
HUB = "00005a4d00d3"
TIMEOUT = 90


@pytest.fixture
def rig(tmp_path, lab):
    r = UplinkRig(tmp_path, firmware=firmware_tree(), heap="320k", lab=lab)
    yield r
    r.stop()


def start(rig, lab, config, uplink, keepalive_a=None, dns=False):
    h = rig.add_hub(HUB, MAIN, config, uplink=uplink)
    rig.start_broker()
    flash = Flash(h.flash)
    cfg = json.loads(flash.read("/uplink.json"))
    cfg["uplink"]["bearers"] = lab.bearer_config(dns=dns)
    cfg["uplink"]["bearers"][0]["keepalive"] = keepalive_a
    flash.write("/uplink.json", json.dumps(cfg).encode())
    rig.start_receiver()
    h.vhub.start()
    rig.wait(lambda: bearer(h, "a").get("live") and bearer(h, "b").get("live"), TIMEOUT, "both bearers live")
    return h


def clients_from(rig, address):
    """Client ids the broker saw connect from address."""
    return set(re.findall(r"New client connected from %s:\d+ as (\S+)" % re.escape(address),
                          rig.broker.log_tail(10 ** 7)))


def black_hole_then_alarm(rig, lab, h, link, timeout):
    """Black-hole the veth `link` and wait until an alarm the hub made after that is in the
    database (whoever calls this checks the hub had not yet noticed the link was dead)."""
    lab.blackhole(link)
    last = max(h.appended())
    rig.wait(lambda: [s for s, r in rows(rig, h.uid) if s > last and r.get("prio") == 1], timeout,
             "an alarm made after the black hole in the database")


def test_alarm_reaches_the_database_while_the_primary_is_black_holed_and_routine_moves_and_back(rig, lab):
    total = 400
    # a's keepalive is 6 s: the hub cannot notice the black hole for 9 s, while an alarm
    # is made every 0.8 s; b's is 2 s
    h = start(rig, lab, {"total": total, "interval_ms": 40, "alarm_every": 20},
              {"keepalive": 2, "batch_age_ms": 200}, keepalive_a=6)
    rig.wait(lambda: bearer(h, "a").get("sent", 0) >= 3, TIMEOUT, "routine data on bearer a")
    assert h.state()["bearer"] == "a"
    # each bearer's session left by its own interface
    assert clients_from(rig, "10.99.1.2") == {f"hub-{HUB}-a"}
    assert clients_from(rig, "10.99.2.2") == {f"hub-{HUB}-b"}
    b_sent = bearer(h, "b")["sent"]
    black_hole_then_alarm(rig, lab, h, "a", TIMEOUT)
    # ... before the hub knew a was dead: it went on b at once
    assert bearer(h, "a")["live"] and bearer(h, "a")["sessions"] == 1
    rig.wait(lambda: bearer(h, "a").get("state") == "degraded", TIMEOUT, "bearer a degraded")
    rig.wait(lambda: h.state()["bearer"] == "b", TIMEOUT, "routine on bearer b")
    rig.wait(lambda: bearer(h, "b")["sent"] >= b_sent + 5, TIMEOUT, "routine batches on b")
    assert (0, STATES.index("degraded")) in changes(h)
    lab.blackhole("a", False)
    rig.wait(lambda: bearer(h, "a").get("state") == "up", TIMEOUT, "bearer a up again")
    a_sent = bearer(h, "a")["sent"]
    rig.wait(lambda: h.state()["bearer"] == "a" and bearer(h, "a")["sent"] >= a_sent + 3, TIMEOUT,
             "routine back on a")
    rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    assert len(check_exactly_once(rig, h)) == total
    # b never left by a's interface, nor a by b's
    assert clients_from(rig, "10.99.1.2") == {f"hub-{HUB}-a"}
    assert clients_from(rig, "10.99.2.2") == {f"hub-{HUB}-b"}


def test_primary_link_down_moves_routine_to_the_second_bearer_and_back(rig, lab):
    total = 300
    h = start(rig, lab, {"total": total, "interval_ms": 40, "alarm_every": 25},
              {"keepalive": 2, "batch_age_ms": 200})
    rig.wait(lambda: bearer(h, "a").get("sent", 0) >= 3, TIMEOUT, "routine data on bearer a")
    sessions_a = bearer(h, "a")["sessions"]
    lab.down("a")
    # its session goes silent, and reconnecting fails at once (no route on a downed interface)
    rig.wait(lambda: bearer(h, "a").get("state") == "degraded" and not bearer(h, "a").get("live"), TIMEOUT,
             "bearer a degraded and its session gone")
    rig.wait(lambda: h.state()["bearer"] == "b", TIMEOUT, "routine on bearer b")
    b_sent = bearer(h, "b")["sent"]
    rig.wait(lambda: bearer(h, "b")["sent"] >= b_sent + 3, TIMEOUT, "routine batches on b")
    assert bearer(h, "a")["sessions"] == sessions_a  # no session got through a downed link
    lab.up("a")
    rig.wait(lambda: bearer(h, "a").get("state") == "up" and bearer(h, "a")["sessions"] > sessions_a, TIMEOUT,
             "bearer a up again with a new session")
    a_sent = bearer(h, "a")["sent"]
    rig.wait(lambda: h.state()["bearer"] == "a" and bearer(h, "a")["sent"] >= a_sent + 3, TIMEOUT,
             "routine back on a")
    rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    assert len(check_exactly_once(rig, h)) == total
    ch = changes(h)
    assert (0, STATES.index("degraded")) in ch and ch[-1] == (0, STATES.index("up"))


def test_dns_failure_on_the_primary_moves_routine_to_the_second_bearer_and_back(rig, lab):
    """Each bearer resolves the broker's name at its own DNS server, over its own veth."""
    total = 300
    h = start(rig, lab, {"total": total, "interval_ms": 40, "alarm_every": 25},
              {"keepalive": 2, "batch_age_ms": 200}, dns=True)
    rig.wait(lambda: bearer(h, "a").get("sent", 0) >= 3, TIMEOUT, "routine data on bearer a")
    sessions_a = bearer(h, "a")["sessions"]
    lab.dns("a", "nxdomain")
    # the session that is up does not ask DNS again: end it (a black hole until the hub gives up on it)
    lab.blackhole("a")
    rig.wait(lambda: bearer(h, "a").get("state") == "degraded" and not bearer(h, "a").get("live"), TIMEOUT,
             "bearer a degraded, its session gone")
    lab.blackhole("a", False)
    fails, queries = bearer(h, "a")["fails"], lab.dns_server.queries
    # the path works again, but a's name does not resolve at a's server: a fails on, b carries routine
    rig.wait(lambda: bearer(h, "a")["fails"] >= fails + 2 and lab.dns_server.queries >= queries + 2, TIMEOUT,
             "bearer a failing on DNS")
    assert bearer(h, "a")["state"] == "degraded" and bearer(h, "a")["sessions"] == sessions_a
    assert h.state()["bearer"] == "b"
    b_sent = bearer(h, "b")["sent"]
    rig.wait(lambda: bearer(h, "b")["sent"] >= b_sent + 3, TIMEOUT, "routine batches on b")
    lab.dns("a", None)
    rig.wait(lambda: bearer(h, "a").get("state") == "up" and bearer(h, "a")["sessions"] > sessions_a, TIMEOUT,
             "bearer a up again with a new session")
    rig.wait(lambda: h.state()["bearer"] == "a", TIMEOUT, "routine back on a")
    rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    assert len(check_exactly_once(rig, h)) == total
    assert lab.dns_server.queries > 0


def test_slow_primary_keeps_routine_and_alarms_arrive_exactly_once(rig, lab):
    """A slow link (300 ms each way, every chunk: a congested cell) is not a
    dead one: health is judged by traffic, and a's replies come well inside
    its deadlines, so the manager keeps a up, routine data stays on it, alarms
    go on both bearers, and every record arrives once."""
    total = 300
    lab.slow("a", 300)  # before the hub starts: every session of a goes through the delaying proxy
    h = start(rig, lab, {"total": total, "interval_ms": 40, "alarm_every": 10},
              {"keepalive": 2, "batch_age_ms": 200}, keepalive_a=6)
    rig.wait(lambda: bearer(h, "a").get("sent", 0) >= 3, TIMEOUT, "routine data on the slow bearer a")
    assert h.state()["bearer"] == "a"
    # a's session really is the slowed one: the broker saw it come from the cloud's proxy, not a's veth
    assert f"hub-{HUB}-a" not in clients_from(rig, "10.99.1.2") and clients_from(rig, "10.99.2.2") == {f"hub-{HUB}-b"}
    rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    got = check_exactly_once(rig, h)
    assert len(got) == total and len([r for _, r in got if r.get("prio") == 1]) == total // 10
    a = bearer(h, "a")
    assert a["state"] == "up" and a["sessions"] == 1 and a["sent"] >= 10, a  # never dropped, carried on
    assert (0, STATES.index("degraded")) not in changes(h)


def test_a_primary_too_slow_for_its_deadlines_is_degraded_and_recovers(rig, lab):
    """Slower than its deadlines (3 s each way, a keepalive of 2 s: the connect
    deadline is one keepalive) a is as good as dead: its sessions time out,
    it is marked degraded, routine goes on b, and alarms still arrive once.
    When the link is fast again a comes back up and routine returns."""
    total = 300
    lab.slow("a", 3000)
    h = start_one_live(rig, lab, {"total": total, "interval_ms": 40, "alarm_every": 10},
                       {"keepalive": 2, "batch_age_ms": 200})
    rig.wait(lambda: bearer(h, "a").get("state") == "degraded", TIMEOUT, "the too-slow bearer a degraded")
    assert bearer(h, "a")["sessions"] == 0 and not bearer(h, "a")["live"]
    rig.wait(lambda: h.state()["bearer"] == "b" and bearer(h, "b")["sent"] >= 5, TIMEOUT, "routine on b")
    made = h.state()["made"]
    lab.slow("a", None)
    rig.wait(lambda: bearer(h, "a").get("state") == "up" and bearer(h, "a").get("live"), TIMEOUT, "bearer a up")
    a_sent = bearer(h, "a")["sent"]
    rig.wait(lambda: h.state()["bearer"] == "a" and bearer(h, "a")["sent"] >= a_sent + 3, TIMEOUT,
             "routine back on a")
    rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain")
    got = check_exactly_once(rig, h)
    assert len(got) == total and len([r for _, r in got if r.get("prio") == 1]) == total // 10
    assert made >= 10  # readings, an alarm among them, were made while a was too slow
    ch = changes(h)
    assert (0, STATES.index("degraded")) in ch and ch[-1] == (0, STATES.index("up"))


def start_one_live(rig, lab, config, uplink):
    """As start(), waiting only for b: a may never get a session."""
    h = rig.add_hub(HUB, MAIN, config, uplink=uplink)
    rig.start_broker()
    flash = Flash(h.flash)
    cfg = json.loads(flash.read("/uplink.json"))
    cfg["uplink"]["bearers"] = lab.bearer_config()
    flash.write("/uplink.json", json.dumps(cfg).encode())
    rig.start_receiver()
    h.vhub.start()
    rig.wait(lambda: bearer(h, "b").get("live"), TIMEOUT, "bearer b live")
    return h
