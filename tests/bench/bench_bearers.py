"""Bearer manager figures (docs/bearers.md): a virtual hub (unix port, TLS,
the real firmware) with two hostnet bearers, each through its own Relay to
a real Mosquitto, and the real receiver with its SQLite database.

  black hole on the primary -> routine data on the second bearer (s)
  black hole on the primary -> primary marked degraded (s)
  alarm append -> database commit, p50/p99: both bearers healthy, and with
  the primary black-holed (alarms go on every healthy bearer at once, so
  the black hole should cost nothing)

and the same with the bearers as veths in network namespaces
(samband.rig.netns: the hub's sockets pinned to their interfaces, the black
hole an nftables drop) when this process may make them (root); and with
the second bearer cellular (the modem simulator, SIM7080G, its sockets in
the cloud namespace), the first a veth.
"""

import json
import tempfile
import time

from benchlib import TESTS, figure, firmware_tree, run_mpy

HUB = "00005a4d00e1"


def pct(xs, p):
    """The p-th percentile (nearest rank), NaN for no samples."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def heap():
    out = dict(line.split() for line in run_mpy(["bearers_heap_mpy.py"]).split("\n") if line.strip())
    figure("heap, bearer manager + hostnet imported (from the flash folder)",
           round(int(out["manager_import"]) / 1024, 1), "KB")
    figure("heap, manager with two bearers and their MQTT clients (unconnected)",
           round(int(out["manager_two_bearers"]) / 1024, 1), "KB")
    figure("heap, clock imported and made", round(int(out["clock"]) / 1024, 1), "KB")
    figure("heap, manager running (two bearers up, sessions in their back-off), beyond the above",
           round(int(out["manager_running"]) / 1024, 1), "KB")
    figure("heap, cellular bearer + AT engine imported (asyncio already in)",
           round(int(out["cellular_import"]) / 1024, 1), "KB")
    figure("heap, PPP data path (hub/bearers/ppp.py) imported beyond that",
           round(int(out["ppp_import"]) / 1024, 1), "KB")


def flaps(n=1000, per_flap=2):
    """n scripted flaps (tests/flapkit.py: a and b cut in turn, overlapped, the
    hub appending throughout): seconds per flap, and every record once."""
    import flapkit
    from test_uplink import check_exactly_once, drained

    from samband.rig.relay import Relay
    from samband.rig.uplink import UplinkRig
    from samband.vhub import Flash
    total = n * per_flap + 40
    with tempfile.TemporaryDirectory() as d:
        rig = UplinkRig(d, firmware=firmware_tree(), heap="360k")  # two TLS sessions (tests/test_bearers.py)
        ra = rb = None
        try:
            h = rig.add_hub(HUB, TESTS / "data" / "uplink_main.py",
                            {"total": total, "interval_ms": 150, "alarm_every": 7},
                            uplink=flapkit.UPLINK)
            rig.start_broker()
            ra, rb = Relay(rig.broker.port), Relay(rig.broker.port)
            flash = Flash(h.flash)
            cfg = json.loads(flash.read("/uplink.json"))
            cfg["uplink"]["bearers"] = [{"kind": "hostnet", "name": "a", "port": ra.port},
                                        {"kind": "hostnet", "name": "b", "port": rb.port}]
            flash.write("/uplink.json", json.dumps(cfg).encode())
            rig.start_receiver()
            h.vhub.start()
            rig.wait(lambda: flapkit.is_back(h, "a", 1) and flapkit.is_back(h, "b", 1), 120, "both bearers live")
            t0 = time.monotonic()
            per, _ = flapkit.flap(rig, h, {"a": ra, "b": rb}, n, per_flap)
            took = time.monotonic() - t0
            rig.wait(lambda: drained(rig, h, total), 300, "the hub's journal to drain")
            got = check_exactly_once(rig, h)
            assert len(got) == total, (len(got), total)
        finally:
            for r in (ra, rb):
                if r is not None:
                    r.close()
            rig.stop()
    figure(f"{n} bearer flaps (relay resets, a and b in turn, overlapped), all of them", round(took, 1), "s")
    for p in (50, 90, 99):
        figure(f"bearer flap, cut to next cut, p{p}", round(pct(per, p) * 1000), "ms")
    figure(f"records after {n} flaps, each in the database exactly once", len(got), "")


def main():
    heap()
    flaps()
    failover_and_latency()
    from samband.rig import netns
    why = netns.available()
    if why:
        print(f"# bearers in network namespaces: not measured ({why})")
        return
    with netns.NetLab(("a", "b")) as lab:
        failover_and_latency(lab=lab)
    with netns.NetLab(("a",)) as lab:
        failover_and_latency(lab=lab, modem="sim7080g")


def failover_and_latency(keepalive=2, rounds=3, lab=None, modem=None):
    """lab: a NetLab (veths, nftables black hole); None: a Relay per bearer on loopback.
    modem: bearer b is cellular instead, the simulator playing that modem with its
    sockets in the lab's cloud (lab then has bearer a only)."""
    from samband.modem.sim import ModemSim, Scenario
    from samband.rig import netns
    from samband.rig.relay import Relay
    from samband.rig.uplink import UplinkRig
    from samband.vhub import Flash
    where = ("veth + %s modem" % modem) if modem else "veth" if lab else "relay"
    sim = None
    if modem:
        sim = ModemSim(Scenario(dialect=modem, registration=[(0, 1)], netns=lab.cloud,
                                names={netns.BROKER_NAME: netns.BROKER_IP})).start()
    lat = {"healthy": [], "blackhole": []}
    phase = ["warmup"]

    def on_reading(hub, seq, r):
        if r.is_alarm and phase[0] in lat:
            lat[phase[0]].append(time.time() * 1000 - r.hts)

    failover, degraded = [], []
    with tempfile.TemporaryDirectory() as d:
        rig = UplinkRig(d, firmware=firmware_tree(), heap="320k", on_reading=on_reading, lab=lab)
        relays = []
        try:
            h = rig.add_hub(HUB, TESTS / "data" / "uplink_main.py",
                            {"total": 10 ** 6, "alarm_every": 4, "interval_ms": 50},
                            uplink={"batch_age_ms": 500, "keepalive": keepalive},
                            env={"SAMBAND_MODEM": sim.path} if sim else None)
            rig.start_broker()
            flash = Flash(h.flash)
            cfg = json.loads(flash.read("/uplink.json"))
            if lab is None:
                ra, rb = Relay(rig.broker.port), Relay(rig.broker.port)
                relays = [ra, rb]
                cfg["uplink"]["bearers"] = [{"kind": "hostnet", "name": "a", "port": ra.port},
                                            {"kind": "hostnet", "name": "b", "port": rb.port}]
            elif sim is not None:
                cfg["uplink"]["bearers"] = lab.bearer_config() + [
                    {"kind": "cellular", "name": "b", "modem": modem, "apn": "internet"}]
            else:
                cfg["uplink"]["bearers"] = lab.bearer_config()
            flash.write("/uplink.json", json.dumps(cfg).encode())

            def blackhole(on):
                if lab is None:
                    ra.blackhole = on
                else:
                    lab.blackhole("a", on)
            rig.start_receiver()
            h.vhub.start()

            def bearer(name):
                return next((b for b in h.state().get("bearers", []) if b["name"] == name), {})

            for _ in range(rounds):
                rig.wait(lambda: bearer("a").get("state") == "up" and bearer("a").get("live")
                         and bearer("b").get("live") and h.state().get("bearer") == "a", 120, "both bearers up")
                phase[0] = "healthy"
                time.sleep(5)
                phase[0] = "blackhole"
                blackhole(True)
                t0 = time.monotonic()
                rig.wait(lambda: h.state().get("bearer") == "b", 60, "routine on b")
                failover.append(time.monotonic() - t0)
                rig.wait(lambda: bearer("a").get("state") == "degraded", 60, "a degraded")
                degraded.append(time.monotonic() - t0)
                time.sleep(max(0.0, 5 - (time.monotonic() - t0)))
                phase[0] = "recovering"
                blackhole(False)
        finally:
            for r in relays:
                r.close()
            rig.stop()
            if sim is not None:
                sim.stop()
    figure(f"{where}: black hole -> routine on the second bearer (keepalive {keepalive} s), median of {rounds}",
           round(pct(failover, 50), 2), "s")
    figure(f"{where}: black hole -> primary marked degraded (keepalive {keepalive} s, 2 failures), "
           f"median of {rounds}", round(pct(degraded, 50), 2), "s")
    for name in ("healthy", "blackhole"):
        xs = lat[name]
        what = where + ": " + ("both bearers healthy" if name == "healthy" else "primary black-holed")
        figure(f"alarm append->commit, {what}, p50", round(pct(xs, 50), 1), "ms")
        figure(f"alarm append->commit, {what}, p99", round(pct(xs, 99), 1), "ms")
        figure(f"alarms measured, {what}", len(xs), "")


if __name__ == "__main__":
    main()
