"""The soak, short (issue 17 item 2): four simulated hours of the real hub
(from ROMFS, at the rig's FULL_HEAP) on an accelerated clock, with the
bench's devices, a bearer flap and a power cut (samband.rig.soak says how
time is accelerated and what that can and cannot show). Asserted: every
device record the devices made is in the receiver's database exactly once,
the hub's journal drained, no MemoryError anywhere (the collector's counter,
the hub's problems, its console), no deadlock, and the heap flat within a
boot. `make bench` (tests/bench/bench_soak.py) runs the whole day and prints
the figures per hour.
"""

import collections

from samband.rig.soak import CGM, HR, INDICATED, Soak, named, pooled_slope, schedule, slope, summary

HOURS = 4
# Bytes per simulated hour the heap may grow by within a boot. A healthy hub's heap after a
# collection moves by about a KB from one STATUS to the next (what is in flight at that
# instant), and 100 simulated minutes gave slopes of -670..+550 B/h: 1 KB/h (24 KB a day,
# or a block of 64 bytes kept per reading at the day's 20 an hour) is what this short soak
# can tell from noise, over its 170 minutes with room to spare. The day (`make bench`) and
# one boot of 60 hours resolve far finer (docs/development.md, "The soak").
SLOPE_BOUND = 1024


def test_a_simulated_day_shape():
    """The schedule is the bench's workload: a CGM every 5 minutes, the heart rate every
    minute, blood pressure 3, temperature and SpO2 2, the weight once a day."""
    day = collections.Counter(kind for m in range(24 * 60) for kind, _ in schedule(m))
    assert day == {"hr": 1440, "cgm": 288, "bp": 3, "thermo": 2, "plx": 2, "scale": 1}
    first = collections.Counter(kind for m in range(HOURS * 60) for kind, _ in schedule(m))
    assert all(first[k] >= 1 for k in INDICATED)  # the short soak sees every kind measure


def test_the_pooled_slope_sees_growth_that_power_cuts_hide():
    """A heap that grows 1 KB an hour and falls back at each power cut looks flat (or even
    shrinking) overall; within each boot it grows, and that is what the soak bounds."""
    boots = [[(h + 6 * b, 100000 + 1024 * h) for h in range(6)] for b in range(4)]
    flat = [p for g in boots for p in g]
    assert abs(slope([x for x, _ in flat], [y for _, y in flat])) < 100
    assert abs(pooled_slope(boots) - 1024) < 1e-6
    assert pooled_slope([[(h, 100000 + (h % 2) * 200) for h in range(12)]]) < SLOPE_BOUND  # noise
    spikes = [(h / 4, 100000 + (12000 if h % 7 == 3 else 0)) for h in range(40)]  # a batch in flight now and then
    assert pooled_slope([spikes]) == 0


def test_four_simulated_hours_keep_every_record_once_and_the_heap_flat(tmp_path):
    # the power cut first, then the flap: the first boot runs 170 simulated minutes after its
    # warm-up with nothing but readings, the steady state a leak per reading would climb through.
    # (A reconnect raises the heap for a few real seconds and a boot's first backlog once, by
    # 1-2 KB: at 600x either would read as a slope over so short a boot; docs/development.md.)
    with Soak(tmp_path, hours=HOURS, ms_per_min=100, faults=({215: "flap"}, {200: "cut"}, 20),
              warmup_min=30) as soak:
        res = soak.run()
        lines = "\n".join(summary(res))
        console = [line for line in soak.rig.lines if "MemoryError" in line]
        hr = soak.view.readings(device=named(HR), mdc=147842)
        cgm = soak.view.readings(device=named(CGM), mdc=160212)
    print(lines)
    # the faults happened, and the hub's clock saw the simulated time
    assert res["faults"] == {"bearer flap": 1, "power cut": 1} and res["boots"] == 2, lines
    assert res["warped_ms"] > (HOURS - 0.5) * 3600 * 1000, lines
    live = [r["hts"] for r in cgm if "hts" in r]
    assert max(live) - min(live) > 2 * 3600 * 1000, lines  # CGM readings dated hours apart, made seconds apart
    # exactly once: every CGM record (by its time offset), every indicated measurement (by its device time)
    assert sorted(res["have"]["cgm"]) == res["cgm_made"], lines
    for k in INDICATED:
        got = res["have"][k]
        assert len(got) == res["made"][k] and len(set(got)) == len(got), (k, got, lines)
    dts = [r.get("dts") for r in hr]
    assert len(set(dts)) == len(dts) and res["hr_summaries"] >= 4, lines  # no summary stored twice
    assert res["pending"] == 0 and res["evicted"] == 0, lines
    # no MemoryError anywhere, no deadlocked interpreter
    assert res["memory_errors"] == 0 and not res["problems"] and not console, (console, lines)
    assert res["deadlocks"] == 0
    # flat: within the boot, the heap after a collection grows by less than SLOPE_BOUND a simulated hour
    assert res["slope_samples"] >= 20, lines
    assert abs(res["slope"]) < SLOPE_BOUND, lines
