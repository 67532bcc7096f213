"""Bearer manager figures (docs/bearers.md): a virtual hub (unix port, TLS,
the real firmware) with two hostnet bearers, each through its own Relay to
a real Mosquitto, and the real receiver with its SQLite database.

  black hole on the primary -> routine data on the second bearer (s)
  black hole on the primary -> primary marked degraded (s)
  alarm append -> database commit, p50/p99: both bearers healthy, and with
  the primary black-holed (alarms go on every healthy bearer at once, so
  the black hole should cost nothing)
"""

import json
import tempfile
import time

from bench_uplink import pct
from benchlib import TESTS, figure, firmware_tree, run_mpy

HUB = "00005a4d00e1"


def heap():
    out = dict(line.split() for line in run_mpy(["bearers_heap_mpy.py"]).split("\n") if line.strip())
    figure("heap, bearer manager + hostnet imported (from the flash folder)",
           round(int(out["manager_import"]) / 1024, 1), "KB")
    figure("heap, manager with two bearers and their MQTT clients (unconnected)",
           round(int(out["manager_two_bearers"]) / 1024, 1), "KB")
    figure("heap, clock imported and made", round(int(out["clock"]) / 1024, 1), "KB")


def main():
    heap()
    failover_and_latency()


def failover_and_latency(keepalive=2, rounds=3):
    from samband.rig.relay import Relay
    from samband.rig.uplink import UplinkRig
    lat = {"healthy": [], "blackhole": []}
    phase = ["warmup"]

    def on_reading(hub, seq, r):
        if r.is_alarm and phase[0] in lat:
            lat[phase[0]].append(time.time() * 1000 - r.hts)

    failover, degraded = [], []
    with tempfile.TemporaryDirectory() as d:
        rig = UplinkRig(d, firmware=firmware_tree(), heap="320k", on_reading=on_reading)
        relays = []
        try:
            h = rig.add_hub(HUB, TESTS / "data" / "uplink_main.py",
                            {"total": 10 ** 6, "alarm_every": 4, "interval_ms": 50},
                            uplink={"batch_age_ms": 500, "keepalive": keepalive})
            rig.start_broker()
            ra, rb = Relay(rig.broker.port), Relay(rig.broker.port)
            relays = [ra, rb]
            cfg = json.loads((h.flash / "uplink.json").read_text())
            cfg["uplink"]["bearers"] = [{"kind": "hostnet", "name": "a", "port": ra.port},
                                        {"kind": "hostnet", "name": "b", "port": rb.port}]
            (h.flash / "uplink.json").write_text(json.dumps(cfg))
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
                ra.blackhole = True
                t0 = time.monotonic()
                rig.wait(lambda: h.state().get("bearer") == "b", 60, "routine on b")
                failover.append(time.monotonic() - t0)
                rig.wait(lambda: bearer("a").get("state") == "degraded", 60, "a degraded")
                degraded.append(time.monotonic() - t0)
                time.sleep(max(0.0, 5 - (time.monotonic() - t0)))
                phase[0] = "recovering"
                ra.blackhole = False
        finally:
            for r in relays:
                r.close()
            rig.stop()
    figure(f"black hole -> routine on the second bearer (keepalive {keepalive} s), median of {rounds}",
           round(pct(failover, 50), 2), "s")
    figure(f"black hole -> primary marked degraded (keepalive {keepalive} s, 2 failures), median of {rounds}",
           round(pct(degraded, 50), 2), "s")
    for name in ("healthy", "blackhole"):
        xs = lat[name]
        what = "both bearers healthy" if name == "healthy" else "primary black-holed"
        figure(f"alarm append->commit, {what}, p50", round(pct(xs, 50), 1), "ms")
        figure(f"alarm append->commit, {what}, p99", round(pct(xs, 99), 1), "ms")
        figure(f"alarms measured, {what}", len(xs), "")


if __name__ == "__main__":
    main()
