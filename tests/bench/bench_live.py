"""Live data for acute staff (receiver/live.py, docs/fhir.md "Live data"): one
hub's year in PostgreSQL (a throwaway cluster, started as the tests start it),
linked to a patient; p50/p99 of the two questions the emergency centre asks:

* latest: the patient's newest reading of each kind (live.latest_of);
* last 24 h: every reading of the patient in the last day (live.recent_of).

Requirement: each within 100 ms. The year: CGM every 5 min, a fingerstick
glucose 4 a day with its meal context, blood pressure 3 a day, SpO2 and pulse
every hour, temperature twice and weight once a day, the CGM's battery every
hour; plus a month of a second hub (another patient) in the same table. The
same on SQLite for comparison. Each query runs 200 times, on one connection.
"""

import sys
import tempfile
import time
from pathlib import Path

from benchlib import TESTS, figure

sys.path.insert(0, str(TESTS))

from test_uplink_store import PgUnavailable, pg_cluster  # noqa: E402

from hub import reading as R  # noqa: E402
from samband.receiver import live, patients  # noqa: E402
from samband.receiver.store import open_store  # noqa: E402

HUB, OTHER = "a4cf12345678", "a4cf12345679"
PATIENT, NEIGHBOUR = ("urn:oid:2.16.578.1.12.4.1.4.1", "12345678901"), ("urn:oid:2.16.578.1.12.4.1.4.1", "1")
# one device of each kind: public addresses 00:1C:05:00:00:0n
CGM, GLU, BP, PLX, THERMO, SCALE = (bytes([0, 0x00, 0x1C, 0x05, 0, 0, n]) for n in (2, 1, 4, 5, 6, 7))
T0 = 1_733_097_600_000  # 2024-12-02T00:00:00Z: a year before "now"
DAY, MIN = 86_400_000, 60_000
ROUNDS = 200


def year(days, t0):
    """(t, dev, mdc, val, kw) of `days` days, oldest first."""
    out = []
    for d in range(days):
        day = t0 + d * DAY
        for i in range(288):
            out.append((day + i * 5 * MIN, CGM, 160196, 90 + (i * 7 + d) % 90, dict(unit="mg/dL", rec=d * 288 + i)))
        for h in range(24):
            t = day + h * 60 * MIN + 17_000
            out.append((t, PLX, 150456, 94 + h % 5, dict(unit="%")))
            out.append((t + 1, PLX, 149530, 60 + h % 30, dict(unit="/min")))
            out.append((t + 2, CGM, 67996, 100 - d * 100 // max(days, 1), dict(unit="%")))
        for k, h in enumerate((7, 12, 18, 22)):
            t = day + h * 60 * MIN
            rec = d * 4 + k
            out.append((t, GLU, 160184, 100 + k * 20, dict(unit="mg/dL", rec=rec, dts=t // 1000)))
            out.append((t, GLU, 8417864, 1 + k % 4, dict(rec=rec)))
        for h in (8, 14, 20):
            t = day + h * 60 * MIN + 30_000
            out.append((t, BP, 150020, [118 + h, 78, 91], dict(unit="mm[Hg]", comp=[150021, 150022, 150023],
                                                             dts=t // 1000)))
        for h in (9, 21):
            out.append((day + h * 60 * MIN, THERMO, 150364, 3650 + h, dict(unit="Cel", exp=-2)))
        out.append((day + 7 * 60 * MIN + 5_000, SCALE, 188736, 7200 + d % 40, dict(unit="kg", exp=-2)))
    return out


def load(store, hub, rows):
    t = time.perf_counter()
    batch = []
    for seq, (ts, dev, mdc, val, kw) in enumerate(rows, 1):
        batch.append((seq, 1, R.make(seq, dev, mdc, val, [1, seq], hts=ts, **kw)))
        if len(batch) == 1000:
            store.store(hub, batch)
            batch = []
    if batch:
        store.store(hub, batch)
    return time.perf_counter() - t


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timings(fn):
    out = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def measure(name, url):
    store = open_store(url)
    try:
        rows = year(365, T0)
        took = load(store, HUB, rows)
        figure(f"{name} year loaded", len(rows), "readings")
        figure(f"{name} load rate", len(rows) / took, "readings/s")
        load(store, OTHER, year(30, T0 + 335 * DAY))
        cur = store.conn.cursor()
        cur.execute("ANALYZE")
        store.conn.commit()
        patients.link(store, HUB, *PATIENT, since=T0)
        patients.link(store, OTHER, *NEIGHBOUR, since=T0)
        now = T0 + 365 * DAY
        n_latest = len(live.latest_of(store, PATIENT))
        n_recent = len(live.recent_of(store, PATIENT, now))
        lat = timings(lambda: live.latest_of(store, PATIENT))
        figure(f"{name} latest ({n_latest} kinds) p50", pct(lat, 50), "ms")
        figure(f"{name} latest p99", pct(lat, 99), "ms")
        rec = timings(lambda: live.recent_of(store, PATIENT, now))
        figure(f"{name} last 24 h ({n_recent} readings) p50", pct(rec, 50), "ms")
        figure(f"{name} last 24 h p99", pct(rec, 99), "ms")
    finally:
        store.close()


def main():
    try:
        with pg_cluster() as url:
            measure("postgresql", url)
    except PgUnavailable as e:
        print(f"postgresql: not measured ({e})")
    with tempfile.TemporaryDirectory() as d:
        measure("sqlite", str(Path(d) / "r.db"))


if __name__ == "__main__":
    main()
