"""The soak (issue 17 item 2): the real hub from ROMFS at the rig's FULL_HEAP through a
simulated 24 hours on an accelerated clock (samband.rig.soak: how, and what that can and
cannot show), with a CGM, a heart-rate strap, a cuff, a thermometer, a scale and an
oximeter, bearer flaps every 4 hours and power cuts every 6. Prints the heap per
simulated hour (after a collection, less the ROMFS image; and the hour's highest), its
slope within a boot, and what reached the receiver against what the devices made."""

import tempfile
import time

from benchlib import figure

from samband.rig.soak import INDICATED, Soak

HOURS = 24


def main():
    t = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="samband-soak-") as d, Soak(d, hours=HOURS, ms_per_min=100) as soak:
        res = soak.run()
    figure("soak simulated hours", res["hours"], "h")
    figure("soak real time", time.monotonic() - t, "s")
    figure("soak acceleration", res["warped_ms"] / 1000 / max(1.0, time.monotonic() - t), "x (warp / real, overall)")
    for h in res["hourly"]:
        figure("soak hour %02d heap (boot %s)" % (h["hour"], ",".join(map(str, h["boots"]))),
               "%.1f KB, peak %.1f KB, least free %.1f KB" % (h["alloc"] / 1024, h["peak"] / 1024,
                                                               h["min_free"] / 1024))
    allocs = [h["alloc"] for h in res["hourly"]]
    figure("soak heap range over the day", "%.1f..%.1f" % (min(allocs) / 1024, max(allocs) / 1024), "KB")
    figure("soak heap slope within a boot (uplink up, after 20 min)", res["slope"],
           "B per simulated hour (%d samples)" % res["slope_samples"])
    figure("soak heap slope within a boot after its first flap (settled)", res["settled_slope"],
           "B per simulated hour (%d samples)" % res["settled_samples"])
    figure("soak hourly peak slope within a boot", res["peak_slope"], "B per simulated hour")
    figure("soak memory errors", res["memory_errors"])
    figure("soak MemoryError or stopped service (problems, console)", len(res["problems"]))
    figure("soak faults", ", ".join("%s %d" % kv for kv in sorted(res["faults"].items())))
    figure("soak boots", res["boots"])
    for k in ("cgm",) + tuple(INDICATED):
        got = res["have"][k]
        figure("soak %s made / stored / distinct" % k, "%d / %d / %d" % (res["made"][k], len(got), len(set(got))))
    figure("soak heart-rate summaries", "%d (%d minutes)" % (res["hr_summaries"], res["hr_minutes"]))
    figure("soak receiver duplicates recognised", res["duplicate_rows"])
    figure("soak rows stored", res["stored_rows"])
    figure("soak left on the hub", res["pending"])
    figure("soak evicted", res["evicted"])
