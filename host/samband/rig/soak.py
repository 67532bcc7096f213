"""A long soak of the virtual hub on an accelerated clock (issue 17 item 2).

The real hub (firmware/main.py -> hub.app, the `hub` package from the ROMFS
image as a board runs it, at the rig's FULL_HEAP) collects from emulated BLE
devices through the bridge and sends through a relay to Mosquitto over TLS,
the receiver and SQLite, while the rig plays a patient's day: a CGM every
5 minutes, a heart-rate strap whose rate the hub keeps as summaries, blood
pressure three times a day, temperature and SpO2 spot checks twice, the
weight once (the bench's workload, docs/journal.md), with bearer flaps and
power cuts on a schedule. Every hub STATUS line gives the heap after a
collection (status.snapshot collects first), less the ROMFS image the
virtual hub keeps in its heap (a board maps it from flash); per simulated
hour the rig keeps the last such figure and the highest, and fits their
slope within each boot.

How time is accelerated, and why that is honest for what is measured. The
simulation advances in simulated minutes, each taking `ms_per_min` of real
time (100 ms: 600x). Before each minute the hub's clock is warped so that it
reads the simulated time (VirtualHub.warp: hub.ports.unix.Port's ticks_ms
and, with the host's clock, its utc_ms), so everything in the firmware that
runs on the port's clock sees the day pass at its real pace of events: the
group commits (store.py, LIVE_MS/BACKED_MS), the silence watch, the heart-rate
minute windows and 15-minute summaries, the clock and its drift allowance,
the readings' mono and UTC stamps. The devices are driven by the same
simulated clock: each measurement is made at its simulated minute (a CGM
record every 5 simulated minutes numbered by its time offset, a cuff reading
at 07:10), and their wall clocks are set to the simulated time before they
measure, as the hub also sets them at each connection.

What acceleration cannot show. The hub's asyncio sleeps and every network
and BLE timeout run on real time (time.ticks_ms, unwarped): a flap of
40 simulated minutes is 4 real seconds to MQTT's reconnects and keepalives,
and a 24-hour day holds about 2.5 real minutes of them, not 24 hours of
retries; the uplink's status and time requests and the LED come 600 times
less often per simulated hour than on a board. Heap effects that grow with
*real* operations (per reconnect, per batch, per BLE event) are exercised
as often as they happen here, not as on a board in a day; effects that grow
with *simulated* time (per reading, per commit, per summary, per hour of
uptime) are exercised as on a board. Not shown at all: flash wear and
littlefs's behaviour after months (the flash sees one day of writes), a
crystal's drift (the hub's clock is the host's), the radio's real timing, a
board's own heap (the 64-bit unix port's objects are about 1.4 times a
32-bit board's: docs/development.md), and anything slower than a day.
The host's latencies are multiplied too: a notification the hub handles one
real second late is dated ten simulated minutes late, so the rig asserts no
simulated timing (how many heart-rate minutes a summary holds, a reading's
exact time), only what the day must keep: every record, once, and the heap.

One piece (over 400 lines): the schedule, the faults, the pacing and the
figures share the simulated minute and the rig's state; split, each part
would take all of them as arguments.

One module: the scenario (the day's schedule and faults), the driver that
plays it against the rig and the figures made from what it recorded belong
together: result(), hourly() and slopes() read the samples and boots that run()
recorded, in the units it recorded them, and the slope fits are used only here.
"""

from __future__ import annotations

import collections
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samband.rig.hubs import FULL_HEAP, UID, Rig

DAY_START_MIN = 7 * 60  # the simulation starts at 07:00 (every kind measures in its first 3 hours)
HR_PER_MIN = 2  # heart-rate notifications per simulated minute (the strap's 1/s, thinned: the hub keeps minutes)

CGM, BP, HR, THERMO, SCALE, PLX = (f"C0:5A:4B:00:02:0{i}" for i in range(1, 7))
SPECS = [
    # the devices' own timers are parked (speed, hr_interval, period): the rig drives them
    {"kind": "cgm", "address": CGM, "records": 3, "speed": 1e-6},
    {"kind": "bp", "address": BP, "stored": 1},
    {"kind": "hr", "address": HR, "hr_interval": 1e6},
    {"kind": "thermo", "address": THERMO, "stored": 1},
    {"kind": "scale", "address": SCALE, "stored": 1},
    {"kind": "plx", "address": PLX, "stored": 1, "period": 1e6},
]
INDICATED = {"bp": (BP, 150020), "thermo": (THERMO, 188424), "scale": (SCALE, 188736), "plx": (PLX, 150456)}
CGM_CONC = 160212
HR_MDC = 147842
# a day's spot checks, minutes after midnight
DAILY = {"bp": (7 * 60 + 10, 13 * 60 + 10, 19 * 60 + 10), "thermo": (8 * 60 + 30, 20 * 60 + 30),
         "plx": (8 * 60 + 35, 20 * 60 + 35), "scale": (7 * 60 + 5,)}


def named(addr: str) -> str:
    return addr + "/r"  # the emulated devices use random static addresses


def schedule(minute: int) -> list[tuple[str, str]]:
    """What the devices do in simulated minute `minute` after the start: [(kind, action)]. Pure."""
    out = [("hr", "beat")]
    if minute % 5 == 0:
        out.append(("cgm", "tick"))
    day_min = (DAY_START_MIN + minute) % (24 * 60)
    for kind, at in DAILY.items():
        if day_min in at:
            out.append((kind, "measure"))
    return out


def default_faults(hours: int) -> tuple[dict[int, str], dict[int, str], int]:
    """({minute: "flap"}, {minute: "cut"}, flap length in minutes) for a run of `hours`: a bearer
    flap 90 minutes in and every 4 hours after, a power cut 160 minutes in and every 6 hours after."""
    flaps = {m: "flap" for m in range(90, hours * 60, 240)}
    cuts = {m: "cut" for m in range(160, hours * 60, 360)}
    return flaps, cuts, 40


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys on xs (0 with fewer than two distinct xs)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def pooled_slope(groups: list[list[tuple[float, float]]]) -> float:
    """The slope within groups: the median of the slopes between every two points of one
    group (Theil-Sen, pooled). Within a group: how a figure grows within a boot, which a
    power cut's fresh heap would otherwise hide. The median: a STATUS that catches a batch
    in flight (up to 12 KB more for a moment) must not read as growth. groups: [[(x, y)]]."""
    slopes = []
    for g in groups:
        for i in range(len(g)):
            x0, y0 = g[i]
            for x1, y1 in g[i + 1:]:
                if x1 != x0:
                    slopes.append((y1 - y0) / (x1 - x0))
    if not slopes:
        return 0.0
    slopes.sort()
    n = len(slopes)
    return slopes[n // 2] if n % 2 else (slopes[n // 2 - 1] + slopes[n // 2]) / 2


class Soak:
    """The rig and its day. run() returns the figures (see result())."""

    def __init__(self, root: str | Path, hours: int = 24, ms_per_min: int = 100, seed: int = 20261202,
                 log: Callable[[str], None] | None = None,
                 faults: tuple[dict[int, str], dict[int, str], int] | None = None, warmup_min: int = 20) -> None:
        self.root = Path(root)
        self.hours = hours
        self.ms_per_min = ms_per_min
        self.rnd = random.Random(seed)
        self.log = log
        self.flaps, self.cuts, self.flap_min = faults if faults is not None else default_faults(hours)
        self.warmup_min = warmup_min  # minutes after each boot left out of the slopes (codecs, pools, bonds)
        self.made = collections.Counter()
        self.cgm_toffs = set()
        self.samples = []  # (simulated minute, boot, heap_alloc, heap_free, uplink connected) from each STATUS
        self.memory_errors = 0
        self.problems = set()
        self.faults = collections.Counter()
        self.bridge = self.broker = self.relay = self.rig = self.rx = self.store = self.view = None
        self.minute = 0
        self.boot_at = {}  # boot number -> simulated minute it started
        self._hr_i = 0
        self._t0 = None
        self._seen = 0

    # ------------------------------------------------------------ set-up
    def start(self) -> Soak:
        from samband.bridge.server import BleBridge
        from samband.receiver.store import open_store
        from samband.rig.broker import Broker
        from samband.rig.relay import Relay
        self.broker = Broker(self.root / "broker")
        password = self.broker.add_hub(UID.hex())
        self.broker.start()
        self.relay = Relay(self.broker.port)
        self.bridge = BleBridge(devices=SPECS)
        where = self.bridge.start()
        db = str(self.root / "receiver.db")
        self.store = open_store(db)  # the receiver's, written from its thread
        self.view = open_store(db)  # the rig reads through its own connection
        self.rig = Rig(self.root / "hub", devices=[{"addr": named(d["address"]), "kind": d["kind"], "name": ""}
                                                   for d in SPECS],
                       bridge=where, heap=FULL_HEAP, romfs=True, warp=True, log=self._log,
                       hub_config={"status_ms": 300,
                                   "uplink": {"host": "localhost", "port": self.relay.port, "keepalive": 2,
                                              "batch_age_ms": 300, "status_ms": 2000}},
                       files={"/keys/ca.der": self.broker.ca_der.read_bytes(),
                              "/keys/mqtt.password": password.encode()})
        self.rig.start()
        self._start_receiver()
        self.cgm_toffs = {r["toff"] for r in self.bridge.sim(CGM).recs}
        self.made.update({k: 1 for k in INDICATED})  # each keeps one measurement from before the run
        self._wait_ready("every device subscribed, the uplink connected")
        return self

    def _log(self, line: str) -> None:
        if "MemoryError" in line:
            self.problems.add("console: " + line.strip()[:200])
        if self.log:
            self.log(line)

    def _start_receiver(self) -> None:
        from samband.receiver.ingest import Ingest
        from samband.receiver.subscriber import Receiver
        from samband.rig.broker import RECEIVER_USER
        self.rx = Receiver(Ingest(self.rig.depot.opener(), self.store, None), "localhost", self.broker.port,
                           self.broker.ca_pem, RECEIVER_USER, self.broker.users[RECEIVER_USER]).start()

    def close(self) -> None:
        for f in (lambda: self.rig and self.rig.close(), lambda: self.rx and self.rx.stop(),
                  lambda: self.relay and self.relay.close(), lambda: self.bridge and self.bridge.stop(),
                  lambda: self.broker and self.broker.stop(), lambda: self.store and self.store.close(),
                  lambda: self.view and self.view.close()):
            try:
                f()
            except Exception as e:  # noqa: BLE001 - tear down all of it whatever one part says
                print("soak teardown:", e)

    def __enter__(self) -> Soak:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ the day
    def _ready(self, s: dict[str, Any], uplink: bool = True) -> bool:
        devs = s.get("ble", {}).get("devices", [])
        return (len(devs) == len(SPECS) and all(d.get("subscribed") for d in devs)
                and (not uplink or (s.get("uplink") or {}).get("connected")))

    def _wait_ready(self, what: str, uplink: bool = True, timeout: float = 180, boot: int | None = None) -> None:
        self.rig.wait_status(lambda s: self._ready(s, uplink) and (boot is None or s.get("boot") == boot),
                             timeout, what)

    def _take_statuses(self) -> None:
        """Heap figures and counters of every STATUS line since the last call."""
        st = self.rig.statuses
        while self._seen < len(st):
            s = st[self._seen]
            self._seen += 1
            if "heap_alloc" not in s:
                continue
            boot = s.get("boot")
            self.boot_at.setdefault(boot, self.minute)
            up = bool((s.get("uplink") or {}).get("connected"))
            self.samples.append((self.minute, boot, s["heap_alloc"] - self.rig.hub.rom_heap, s.get("heap_free"), up))
            # the hub-wide count (BLE events, sessions, batch copies); a firmware before it had BLE's only
            mem = s.get("memory_errors", (s.get("ble") or {}).get("memory_errors"))
            self.memory_errors = max(self.memory_errors, mem or 0)
            for p in s.get("problems") or ():
                if "MemoryError" in p or "stopped" in p:
                    self.problems.add(p)

    def _pace(self) -> None:
        """Warp the hub's clock to the simulated time and wait for the minute's real share."""
        sim_ms = self.minute * 60000
        real_ms = int((time.monotonic() - self._t0) * 1000)
        ahead = sim_ms - real_ms - self.rig.hub.warped_ms
        if ahead > 0:
            self.rig.warp(ahead)
        due = self._t0_real + self.minute * self.ms_per_min / 1000
        left = due - time.monotonic()
        if left > 0:
            time.sleep(left)

    def _device_clock(self, addr: str) -> None:
        # the device's wall clock reads the simulated time (real time + the hub's warp)
        self.bridge.fault(addr, "clock_offset", self.rig.hub.warped_ms // 1000)

    def _act(self, kind: str, action: str) -> None:
        if kind == "hr":
            s = self.bridge.sim(HR)
            for _ in range(HR_PER_MIN):
                self.bridge.call(s.burst_one(self._hr_i))
                self._hr_i += 1
            return
        if kind == "cgm":
            self._device_clock(CGM)
            self.cgm_toffs.update(self.bridge.call(self.bridge.sim(CGM).tick(1)))
            return
        addr = INDICATED[kind][0]
        self._device_clock(addr)
        s = self.bridge.sim(addr)
        self.bridge.call(s.spot_check() if kind == "plx" else s.measure())
        self.made[kind] += 1

    def _power_cut(self) -> None:
        # as tests/test_faults_e2e.py: an indicated measurement is deleted by the device once the
        # stack confirms it, so the cut waits until the hub has committed the ones made so far
        # (here: the receiver has them), then lands anywhere after that
        self._wait_indicated(120)
        time.sleep(self.rnd.uniform(0.1, 1.0))
        boots = self.rig.hub.boots
        boot = self.rig.statuses[-1]["boot"]
        self.rig.power_cut()
        self.rig.hub.wait_boots(boots + 1, 60)
        self.faults["power cut"] += 1
        self._wait_ready("the hub back after a power cut: devices subscribed, uplink connected", boot=boot + 1)

    def _indicated_rows(self) -> dict[str, int]:
        return {k: len(self.view.readings(device=named(a), mdc=mdc)) for k, (a, mdc) in INDICATED.items()}

    def _wait_indicated(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while True:
            have = self._indicated_rows()
            if all(have[k] >= self.made[k] for k in INDICATED):
                return
            if time.monotonic() > end:
                raise AssertionError(f"the receiver lacks indicated measurements: {have} of {dict(self.made)}; "
                                     f"hub tail {self.rig.lines[-5:]}")
            time.sleep(0.2)

    def run(self) -> dict[str, Any]:
        """The simulated day; returns result()."""
        self._t0 = self._t0_real = time.monotonic()
        flap_end = None
        total = self.hours * 60
        while self.minute < total:
            m = self.minute
            if m in self.flaps and flap_end is None:
                self.relay.cut()
                self.faults["bearer flap"] += 1
                flap_end = m + self.flap_min
            if flap_end is not None and m >= flap_end:
                self.relay.up()
                flap_end = None
            if m in self.cuts and flap_end is None:
                t = time.monotonic()
                self._power_cut()
                self._t0_real += time.monotonic() - t  # the real time the reboot took is not simulated time
            self._pace()
            for kind, action in schedule(m):
                self._act(kind, action)
            self._take_statuses()
            self.minute += 1
        if flap_end is not None:
            self.relay.up()
        self._wait_delivered(240)
        self._take_statuses()
        return self.result()

    # ------------------------------------------------------------ results
    def delivered(self) -> dict[str, list[Any]]:
        """Per kind, what the receiver holds against what the devices made."""
        cgm = [r["rec"] for r in self.view.readings(device=named(CGM), mdc=CGM_CONC)]
        have = {"cgm": cgm}
        for k, (addr, mdc) in INDICATED.items():
            rows = self.view.readings(device=named(addr), mdc=mdc)
            have[k] = [r.get("dts") for r in rows if not (isinstance(r.get("ctx"), dict) and r["ctx"].get("interim"))]
        return have

    def _complete(self) -> bool:
        have = self.delivered()
        if set(have["cgm"]) != self.cgm_toffs:
            return False
        return all(len(have[k]) >= self.made[k] for k in INDICATED)

    def _wait_delivered(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._take_statuses()
            s = self.rig.statuses[-1] if self.rig.statuses else {}
            if self._complete() and (s.get("journal") or {}).get("pending") == 0:
                return
            time.sleep(0.5)

    def hourly(self) -> list[dict[str, Any]]:
        """[{"hour", "boots", "alloc", "peak", "floor", "min_free", "samples"}]: per simulated hour,
        the heap after a collection at its last STATUS (alloc), the highest and lowest of them
        (peak, floor), the least free."""
        out = []
        for h in range(self.hours + 1):
            xs = [s for s in self.samples if h * 60 <= s[0] < (h + 1) * 60]  # up or not
            if not xs:
                continue
            out.append({"hour": h, "boots": sorted({s[1] for s in xs}), "alloc": xs[-1][2],
                        "peak": max(s[2] for s in xs), "floor": min(s[2] for s in xs), "samples": len(xs),
                        "min_free": min(s[3] for s in xs if s[3] is not None)})
        return out

    def slopes(self, settled: bool = False) -> tuple[float, float, int]:
        """Bytes per simulated hour: the pooled within-boot slopes of every STATUS's heap and of
        each hour's peak, leaving out the first warmup_min minutes of each boot and the times
        the uplink was down. Without its MQTT session and TLS context the hub holds about 2 KB
        less (a state, not a leak); a flap in the middle of a short boot would otherwise
        read as a slope of a KB an hour. settled: only what follows a boot's first flap (up,
        down, up again): the first backlog a boot drains raises its heap once by 1-2 KB and
        never again (docs/development.md, "The soak"), a step that a boot of a few hours
        would read as a slope."""
        by_boot = collections.defaultdict(list)
        peaks = collections.defaultdict(dict)
        phase = {}  # boot -> 0 never up, 1 up, 2 down after up, 3 up again
        for m, boot, alloc, _free, up in self.samples:
            p = phase.get(boot, 0)
            p = (1 if up else 0) if p == 0 else (2 if p == 1 and not up else (3 if p == 2 and up else p))
            phase[boot] = p
            if m - self.boot_at.get(boot, 0) < self.warmup_min or not up or (settled and p != 3) \
                    or m >= self.hours * 60:  # (not the drain after the day, all at its last minute)
                continue
            by_boot[boot].append((m / 60, alloc))
            h = m // 60
            peaks[boot][h] = max(peaks[boot].get(h, 0), alloc)
        return (pooled_slope(list(by_boot.values())),
                pooled_slope([[(h, v) for h, v in p.items()] for p in peaks.values()]),
                sum(len(v) for v in by_boot.values()))

    def result(self) -> dict[str, Any]:
        have = self.delivered()
        counts = {k: len(v) for k, v in have.items()}
        dup_rows = self.view.conn.execute("SELECT COUNT(*) FROM readings WHERE dup_of IS NOT NULL").fetchone()[0]
        self.view.conn.commit()
        hr = self.view.readings(device=named(HR), mdc=HR_MDC)
        hr_minutes = sum(len(r["val"]) for r in hr if isinstance(r.get("val"), list))
        last = self.rig.statuses[-1] if self.rig.statuses else {}
        alloc_slope, peak_slope, n = self.slopes()
        settled_slope, _, settled_n = self.slopes(settled=True)
        return {
            "hours": self.hours, "hourly": self.hourly(), "slope": alloc_slope, "peak_slope": peak_slope,
            "slope_samples": n, "settled_slope": settled_slope, "settled_samples": settled_n,
            "memory_errors": self.memory_errors, "problems": sorted(self.problems),
            "made": {"cgm": len(self.cgm_toffs), **{k: self.made[k] for k in INDICATED}},
            "delivered": counts, "have": have, "cgm_made": sorted(self.cgm_toffs),
            "duplicate_rows": dup_rows, "hr_summaries": len(hr), "hr_minutes": hr_minutes,
            "faults": dict(self.faults), "boots": self.rig.hub.boots,
            "pending": (last.get("journal") or {}).get("pending"),
            "evicted": (last.get("journal") or {}).get("evicted"), "stored_rows": self.view.count(),
            "deadlocks": self.rig.hub.deadlocks, "warped_ms": self.rig.hub.warped_ms,
        }


def summary(res: dict[str, Any]) -> list[str]:
    """The result in lines, for the bench and a failing test."""
    lines = []
    for h in res["hourly"]:
        lines.append("hour %2d boot %s: heap %.1f KB, peak %.1f KB, floor %.1f KB, least free %.1f KB (%d)"
                     % (h["hour"], ",".join(map(str, h["boots"])), h["alloc"] / 1024, h["peak"] / 1024,
                        h["floor"] / 1024, h["min_free"] / 1024, h["samples"]))
    lines.append(json.dumps({k: v for k, v in res.items() if k not in ("hourly", "have", "cgm_made")}))
    return lines
