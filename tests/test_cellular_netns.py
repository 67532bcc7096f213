"""Cellular as a true second path: the virtual hub (the real firmware on the
unix port) runs in the lab's hub namespace with one veth (bearer a, "Wi-Fi")
and a cellular bearer whose modem is the simulator on a pty; the simulator's
socket commands open their TCP in the lab's cloud namespace (the mobile
network), never through the hub's namespace or the host's. With a's veth
black-holed by nftables, readings and alarms still reach the receiver's
database, over AT+CAOPEN / AT+QIOPEN with TLS on the hub; and when the
mobile network then takes the data context down, the bearer is brought up
again and carries the rest.

The broker's log tells the paths apart: a's session comes from a's veth
(10.99.1.2), the cellular one from the cloud itself (10.99.255.1, where the
modem's network meets the broker), which no socket of the hub's namespace
could have.

Needs root (namespaces, veths, nftables); skips with the reason otherwise.
"""

import json

import pytest
from conftest import TESTS, firmware_tree
from test_bearers import bearer
from test_bearers_netns import black_hole_then_alarm, clients_from
from test_uplink import check_exactly_once, drained

from samband.modem.sim import ModemSim, Scenario
from samband.rig import netns
from samband.rig.uplink import UplinkRig
from samband.vhub import Flash

MAIN = TESTS / "data" / "uplink_main.py"
HUB = "00005a4d00d5"
TIMEOUT = 120


@pytest.fixture
def lab():
    why = netns.available()
    if why:
        pytest.skip(why)
    with netns.NetLab(("a",)) as lab:
        yield lab


@pytest.mark.parametrize("dialect", ["sim7080g", "bg96"])
def test_cellular_carries_readings_while_the_wifi_veth_is_black_holed(tmp_path, lab, dialect):
    total = 160
    sim = ModemSim(Scenario(dialect=dialect, registration=[(0, 1)], netns=lab.cloud,
                            names={netns.BROKER_NAME: netns.BROKER_IP})).start()
    # Two TLS sessions at once (the veth's and the modem socket's): on the unix port mbedTLS
    # allocates from MicroPython's own heap (an ESP32's from the IDF's), and from a folder the
    # bytecode is in that heap too. At 320k the SIM7080G's handshake found no room once the
    # bring-up grew by its radio-duty commands (0.3 KB of code): the cellular bearer never got
    # a session. The hub's real need is the soak's and bench_heap32's business, not this test's.
    rig = UplinkRig(tmp_path, firmware=firmware_tree(), heap="360k", lab=lab)
    try:
        h = rig.add_hub(HUB, MAIN, {"total": total, "interval_ms": 60, "alarm_every": 20},
                        {"keepalive": 3, "batch_age_ms": 200}, env={"SAMBAND_MODEM": sim.path})
        rig.start_broker()
        flash = Flash(h.flash)
        cfg = json.loads(flash.read("/uplink.json"))
        cfg["uplink"]["bearers"] = lab.bearer_config() + [
            {"kind": "cellular", "name": "cell", "modem": dialect, "apn": "internet"}]
        flash.write("/uplink.json", json.dumps(cfg).encode())
        rig.start_receiver()
        h.vhub.start()
        rig.wait(lambda: bearer(h, "a").get("live") and bearer(h, "cell").get("live"), TIMEOUT,
                 "both bearers live")
        rig.wait(lambda: bearer(h, "a").get("sent", 0) >= 3, TIMEOUT, "routine data on bearer a")
        assert h.state()["bearer"] == "a"  # the veth is provisioned first: cheaper
        assert clients_from(rig, "10.99.1.2") == {f"hub-{HUB}-a"}
        # the modem's TCP left from the cloud, where the mobile network meets the broker
        assert clients_from(rig, netns.BROKER_IP) == {f"hub-{HUB}-cell"}
        assert any(c.startswith("AT+CAOPEN=" if dialect == "sim7080g" else "AT+QIOPEN=") and
                   netns.BROKER_NAME in c for c in sim.commands)  # the name, resolved by the network

        cell_sent = bearer(h, "cell")["sent"]
        black_hole_then_alarm(rig, lab, h, "a", TIMEOUT)
        rig.wait(lambda: h.state()["bearer"] == "cell", TIMEOUT, "routine on the cellular bearer")
        rig.wait(lambda: bearer(h, "cell")["sent"] >= cell_sent + 5, TIMEOUT, "routine batches over the modem")
        rig.wait(lambda: bearer(h, "a").get("state") == "degraded", TIMEOUT, "bearer a degraded")
        # the mobile network takes the data context down (its sockets with it): the bearer
        # fails, the manager brings it up again (a second context activation), data goes on
        activate = "AT+CNACT=0,1" if dialect == "sim7080g" else "AT+QIACT=1"
        assert sim.commands.count(activate) == 1
        sim.drop_context()
        rig.wait(lambda: sim.commands.count(activate) == 2, TIMEOUT, "the context activated again")
        rig.wait(lambda: bearer(h, "cell").get("live") and bearer(h, "cell")["sessions"] >= 2, TIMEOUT,
                 "a new cellular session")
        rig.wait(lambda: drained(rig, h, total), TIMEOUT, "the hub's journal to drain over cellular alone")
        assert len(check_exactly_once(rig, h)) == total
        assert bearer(h, "cell")["state"] == "up"
        # nothing of a's left by the cloud's own address, nor cellular's by a's veth
        assert clients_from(rig, "10.99.1.2") == {f"hub-{HUB}-a"}
        assert clients_from(rig, netns.BROKER_IP) == {f"hub-{HUB}-cell"}
    finally:
        rig.stop()
        sim.stop()
