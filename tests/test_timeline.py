"""One corrected timeline (samband.receiver.timeline; issue 14 item 1, issue 12 item 4):
the hub's UTC for readings taken before its clock was set, filled in when its
clock report arrives; device times corrected from coincident time stamps (Current
Time read at connection) or from the newest record of a connection. The pure
functions first, then a whole day on the receiver's store (SQLite and PostgreSQL):
a hub that boots offline for an hour, a meter 3 h 12 min wrong, one never set, a
DST change; every reading within 2 s of the truth."""

from test_uplink_store import pg_url  # noqa: F401 (a throwaway PostgreSQL cluster)

from hub import reading as rd
from samband.receiver import timeline as tl
from samband.receiver.store import open_store

T0 = 1796000000000  # 2026-11-29T..Z, ms: the hub boots
OFF = (3 * 3600 + 12 * 60) * 1000  # the meter's clock is 3 h 12 min ahead
MIN = 60000
HUB = "00005a4d00c7"
METER = b"\x00\x11\x22\x33\x44\x55\x66"
CUFF = b"\x00\x11\x22\x33\x44\x55\x77"
THERMO = b"\x00\x11\x22\x33\x44\x55\x88"
HUBDEV = bytes(7)


def test_mono_wraps_at_30_bits():
    assert tl.mono_delta(5, tl.MONO_WRAP - 5) == 10
    assert tl.mono_delta(tl.MONO_WRAP - 5, 5) == -10
    assert tl.hub_utc(100, (tl.MONO_WRAP - 900, T0)) == T0 + 1000


def test_the_pair_is_the_latest_clock_setting_else_the_earliest_stamped_reading():
    rows = [(7, 1, 500, T0 + 5), (3, tl.MDC_HUB_CLOCK_SET, 100, T0 + 900), (9, tl.MDC_HUB_CLOCK_JUMP, 800, T0 + 1700)]
    assert tl.pick_pair(rows) == (800, T0 + 1700)  # the jump: a better source moved the clock
    assert tl.pick_pair([(7, 1, 500, T0), (4, 1, 200, T0 - 300)]) == (200, T0 - 300)
    assert tl.pick_pair([]) is None


def test_boots_chained_through_the_reset_proof_clock_only_when_no_power_on_came_between():
    # boot 1 powered on (rtc 0 at its mono 900), reset 60 s later; boot 2 anchored at rtc 61 s
    # (its mono 700), set its clock at its mono 10700 (rtc 71 s) to T0; boot 3 after a power cut
    anchors = {1: (900, 0, True), 2: (700, 61000, False), 3: (500, 40, True), 4: (300, 5040, False)}
    pairs = {2: (10700, T0)}
    pair = tl.chain_pair(1, anchors, pairs.get)
    assert tl.hub_utc(900, pair) == T0 - 71000  # boot 1's anchor: 71 s of RTC before the setting
    assert tl.hub_utc(30900, pair) == T0 - 41000
    assert tl.chain_pair(3, anchors, pairs.get) is None  # the power-on restarted the RTC: no link back
    assert tl.chain_pair(4, anchors, pairs.get) is None  # ... nor through boot 3
    pairs[4] = (5300, T0 + 99000)
    assert tl.hub_utc(500, tl.chain_pair(3, anchors, pairs.get)) == T0 + 99000 - 10000  # forward from 3 to 4
    assert tl.chain_pair(2, {2: (1, 5, False)}, pairs.get) is None  # no anchor of a neighbour
    assert tl.chain_pair(5, anchors, pairs.get) is None  # no anchor of its own
    # backward: boot 1 knew the time, boot 2 (after a reset, never online) did not
    anchors = {1: (900, 0, True), 2: (700, 61000, False)}
    assert tl.hub_utc(700, tl.chain_pair(2, anchors, {1: (1900, T0)}.get)) == T0 + 60000


def test_stamps_with_a_time_fault_or_a_bad_fraction():
    assert tl.stamp_of(T0, None, tl.CLOCK_FAULT) == (T0, None, tl.CLOCK_FAULT)
    assert tl.stamp_of(T0, 100, 7) == (T0, None, tl.CLOCK_FAULT)  # an unknown state is no clock
    assert tl.stamp_of(T0, 100, tl.CLOCK_READ, {"ms": 250}) == (T0, 100250, tl.CLOCK_READ)
    assert tl.stamp_of(T0, 100, tl.CLOCK_READ, {"ms": 5000}) == (T0, 100000, tl.CLOCK_READ)


def test_a_meter_3h12_wrong_records_before_and_after_the_hub_sets_its_clock():
    """Read at connection (+3 h 12 min), then set by the hub: its stored records
    (fetched after the write) keep the old offset, a measurement after the write
    the new one. Also a record whose old-clock time looks like a time after the write."""
    conn = T0 + 60 * MIN
    stamps = [tl.stamp_of(conn, (conn + OFF) // 1000, tl.CLOCK_READ, {"ms": (conn + OFF) % 1000}),
              tl.stamp_of(conn + 200, (conn + 200) // 1000, tl.CLOCK_WRITTEN, {"ms": 200})]
    truth = {1: conn - 26 * 60 * MIN, 2: conn - 3 * 60 * MIN - 5 * MIN, 3: conn - 30 * MIN, 4: conn + 5 * MIN}
    rows = [(0, conn + 100, None, True)]
    rows += [(k, conn + 1000 + k, (t + OFF) // 1000, False) for k, t in truth.items() if k < 4]
    rows += [(4, truth[4] + 300, truth[4] // 1000, False)]
    got = tl.correct(rows, stamps)
    for k, t in truth.items():
        assert got[k][1] == "current-time" and abs(got[k][0] - t) <= 1000, (k, got[k][0] - t)
    assert got[1][2] == OFF and abs(got[4][2]) < 1000
    assert got[0] == (conn + 100, "hub-receipt", None)  # no device time: the hub's


def test_a_clock_never_set_is_dated_by_the_hub():
    stamps = [tl.stamp_of(T0, None, tl.CLOCK_FAULT)]
    got = tl.correct([(1, T0 + 500, None, True), (2, None, None, False)], stamps)
    assert got == {1: (T0 + 500, "hub-receipt", None)}  # 2: the hub's UTC is not known yet


def test_a_dst_change_on_a_device_without_current_time():
    """A thermometer on local time (UTC+1, then UTC+2 after the DST change) sends
    what it measures as it measures it, and a stored one first on reconnecting:
    each connection's freshest reading gives that connection's offset."""
    h = 3600 * 1000
    rows = [(1, None, None, True), (2, T0 + 1200, (T0 + h) // 1000, False),
            (3, None, None, True),  # after the change: a stored one 3 min old, then a live one
            (4, T0 + 10 * MIN, (T0 + 7 * MIN + 2 * h) // 1000, False),
            (5, T0 + 12 * MIN + 800, (T0 + 12 * MIN + 2 * h) // 1000, False)]
    got = tl.correct(rows, [])
    assert {k: v[1] for k, v in got.items()} == {2: "newest-record", 4: "newest-record", 5: "newest-record"}
    assert abs(got[2][0] - T0) <= 2000 and abs(got[4][0] - (T0 + 7 * MIN)) <= 2000
    assert abs(got[5][0] - (T0 + 12 * MIN)) <= 2000
    assert round(got[2][2] / h) == 1 and round(got[5][2] / h) == 2


# ---------------------------------------------------------------- a day on the store

class Hub:
    """Makes readings as the firmware does: mono from a 30-bit tick counter that
    wraps during the test, hts once its clock is set (300 ms off the truth)."""

    def __init__(self):
        self.seq = 0
        self.clock_set = False
        self.truth = {}  # seq -> (hub UTC of receipt, UTC the measurement was taken)

    def put(self, dev, mdc, val, received, made=None, dts=None, ctx=None, **more):
        self.seq += 1
        mono = [1, (tl.MONO_WRAP - 20 * MIN + received - T0) % tl.MONO_WRAP]
        hts = received + 300 if self.clock_set else None
        r = rd.make(self.seq, dev, mdc, val, mono, hts=hts, dts=dts, ctx=ctx, **more)
        self.truth[self.seq] = (received, received if made is None else made)
        return (self.seq, 1, r)

    def stamp(self, dev, at, device_ms, state=tl.CLOCK_READ):
        if device_ms is None:
            return self.put(dev, tl.MDC_HUB_DEVICE_CLOCK, tl.CLOCK_FAULT, at)
        return self.put(dev, tl.MDC_HUB_DEVICE_CLOCK, state, at, dts=device_ms // 1000, ctx={"ms": device_ms % 1000})


def a_day(url):
    s = open_store(url)
    hub = Hub()
    put = hub.put
    glucose, temp = 160184, 150364
    # offline, clock unknown: the meter (3 h 12 min ahead) connects, its clock is read, not set
    t = T0 + 10 * MIN
    b1 = [put(METER, tl.MDC_HUB_DEVICE_CONNECTED, 1, t), hub.stamp(METER, t + 150, t + OFF)]
    for k, made in enumerate((T0 - 2 * 3600 * 1000, T0 - 3600 * 1000, T0 + 9 * MIN)):
        b1.append(put(METER, glucose, 100 + k, t + 1000 + k, made, (made + OFF) // 1000, unit="mg/dL"))
    t = T0 + 20 * MIN  # the cuff has never been set: year 0, no device time
    b1 += [put(CUFF, tl.MDC_HUB_DEVICE_CONNECTED, 1, t), hub.stamp(CUFF, t + 100, None),
           put(CUFF, 150020, [120, 80, 93], t + 2000, t + 2000, unit="mm[Hg]",
               comp=[150021, 150022, 150023])]
    assert s.store(HUB, b1) == (len(b1), 0)
    assert all(r.get("utc") is None for r in s.readings(hub=HUB))  # nothing can date them yet
    # an hour later the clock is set (its report comes in a later batch than the readings)
    t = T0 + 60 * MIN
    hub.clock_set = True
    b2 = [put(HUBDEV, tl.MDC_HUB_CLOCK_SET, 2, t)]
    t = T0 + 70 * MIN  # the meter again: read, set, a stored record, then a new one
    b2 += [put(METER, tl.MDC_HUB_DEVICE_CONNECTED, 2, t), hub.stamp(METER, t + 150, t + OFF),
           hub.stamp(METER, t + 400, t + 100, tl.CLOCK_WRITTEN),
           put(METER, glucose, 110, t + 1000, T0 + 65 * MIN, (T0 + 65 * MIN + OFF) // 1000, unit="mg/dL"),
           put(METER, glucose, 111, t + 5 * MIN + 200, t + 5 * MIN, (t + 5 * MIN) // 1000, unit="mg/dL")]
    h = 3600 * 1000  # the thermometer keeps local time (UTC+1) and has no Current Time
    t = T0 + 80 * MIN
    b2 += [put(THERMO, tl.MDC_HUB_DEVICE_CONNECTED, 1, t),
           put(THERMO, temp, 367, t + 900, t + 500, (t + 500 + h) // 1000, exp=-1, unit="Cel")]
    assert s.store(HUB, b2) == (len(b2), 0)
    t = T0 + 100 * MIN  # after its DST change (UTC+2): a stored one 5 min old, then a live one
    b3 = [put(THERMO, tl.MDC_HUB_DEVICE_CONNECTED, 2, t),
          put(THERMO, temp, 368, t + 700, t - 5 * MIN, (t - 5 * MIN + 2 * h) // 1000, exp=-1, unit="Cel"),
          put(THERMO, temp, 369, t + 60000 + 600, t + 60000, (t + 60000 + 2 * h) // 1000, exp=-1,
              unit="Cel")]
    assert s.store(HUB, b3) == (len(b3), 0)
    got = {r["seq"]: r for r in s.readings(hub=HUB)}
    assert set(got) == set(hub.truth)
    methods = {}
    for seq, (received, made) in hub.truth.items():
        r = got[seq]
        assert abs(r["utc"] - received) <= 2000, (seq, r)
        assert abs(r["dtc"] - made) <= 2000, (seq, r["dtc"] - made, r)
        methods[r["dtc_method"]] = methods.get(r["dtc_method"], 0) + 1
        assert r["utc_src"] == ("hub" if r.get("hts") is not None else "clock-report")
    assert methods == {"current-time": 8, "hub-receipt": 8, "newest-record": 3}
    # the filled-in times answer time queries like hts does
    assert len(s.readings(hub=HUB, since=T0 - 3 * 3600 * 1000, until=T0 + 30 * MIN)) == len(b1)
    # and the live views for acute staff show what was taken offline, at its hub time
    from samband.receiver import live
    hist = live.history(s, [(HUB, T0, T0 + 30 * MIN)])
    assert sorted(r["seq"] for r in hist) == sorted(x[0] for x in b1) and all(r["utc"] for r in hist)
    newest = {r["mdc"]: r["seq"] for r in live.latest(s, [(HUB, T0, T0 + 30 * MIN)])}
    assert newest[glucose] == b1[4][0] and newest[150020] == b1[-1][0]
    return s, hub


def test_an_offline_hub_and_wrong_device_clocks_on_sqlite(tmp_path):
    """And the FHIR export: corrected times, the coincident time stamps they came from."""
    import json
    from decimal import Decimal

    from fhir.resources.R4B.bundle import Bundle

    from samband.receiver import fhir, fhir_check
    s, hub = a_day(str(tmp_path / "t.db"))
    ex = fhir.export(s.readings(), {}, test=True)
    s.close()
    assert len(ex.bundles) == 1 and fhir_check.bundle_errors(ex.bundles[0]) == []
    Bundle.model_validate(json.loads(fhir.to_json(ex.bundles[0]), parse_float=Decimal))
    res = [e["resource"] for e in ex.bundles[0]["entry"]]
    by_id = {e["fullUrl"]: e["resource"] for e in ex.bundles[0]["entry"]}
    cts = {by_id[o["subject"]["reference"]]["identifier"][0]["value"]: o for o in res
           if "PhdCoincidentTimeStampObservation" in o.get("meta", {}).get("profile", [""])[0]}
    meter = next(v for k, v in cts.items() if k.endswith("44-55-66"))
    cuff = next(v for k, v in cts.items() if k.endswith("44-55-77"))
    thermo = next(v for k, v in cts.items() if k.endswith("44-55-88"))
    t = T0 + 70 * MIN  # the meter's clock as read at its second connection, 3 h 12 min ahead, stamped 150 ms later
    assert (meter["effectiveDateTime"], meter["valueDateTime"]) == (fhir.iso_utc(t + 450), fhir.iso_utc(t + OFF))
    assert "valueDateTime" not in cuff and cuff["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert thermo["valueDateTime"] == fhir.iso_device((T0 + 101 * MIN + 2 * 3600 * 1000) // 1000, None, 0)
    glucose = sorted(o["effectiveDateTime"] for o in res if o.get("code", {}).get("coding", [{}])[0].get("code")
                     == "160184")
    made = (T0 - 2 * 3600 * 1000, T0 - 3600 * 1000, T0 + 9 * MIN, T0 + 65 * MIN, T0 + 75 * MIN)
    from datetime import datetime
    assert len(glucose) == len(made)
    for text, m in zip(glucose, made):  # the hub clock 300 ms off, reads and writes taking 150-300 ms
        assert abs(datetime.fromisoformat(text).timestamp() * 1000 - m) <= 1000, (text, m)


def test_an_offline_hub_and_wrong_device_clocks_on_postgresql(pg_url):  # noqa: F811
    a_day(pg_url)[0].close()


def chained_boots(url):
    """On the store: boot 1 (powered on at T0, the RTC at 0) ends with a reset before its
    clock was known; boot 2 sets its clock 300 ms wrong from the receiver, then SNTP
    jumps it right; boot 3 comes after a power cut, never knows the time."""
    s = open_store(url)
    n = [0]

    def put(boot, mono, mdc, val, hts=None):
        n[0] += 1
        return (n[0], 1, rd.make(n[0], HUBDEV if mdc >> 16 == 1024 else METER, mdc, val, [boot, mono], hts=hts))
    glucose = 160184
    b1 = [put(1, 1000, tl.MDC_HUB_BOOT_RTC, [1, 1000]), put(1, 5000, glucose, 100),        # T0+1 s, T0+5 s
          put(2, 500, tl.MDC_HUB_BOOT_RTC, [0, 61500]), put(2, 2000, glucose, 101)]        # reset at T0+61 s
    assert s.store(HUB, b1) == (4, 0)
    assert all(r.get("utc") is None for r in s.readings(hub=HUB))
    assert s.store(HUB, [put(2, 10000, tl.MDC_HUB_CLOCK_SET, 2, T0 + 71300)]) == (1, 0)   # 300 ms late
    got = {r["seq"]: r for r in s.readings(hub=HUB)}
    assert (got[2]["utc"], got[2]["utc_src"], got[4]["utc"]) == (T0 + 5300, "clock-report", T0 + 63300)
    b3 = [put(2, 20000, tl.MDC_HUB_CLOCK_JUMP, -300, T0 + 81000),
          put(3, 300, tl.MDC_HUB_BOOT_RTC, [1, 200]), put(3, 900, glucose, 102)]           # after a power cut
    assert s.store(HUB, b3) == (3, 0)
    got = {r["seq"]: r for r in s.readings(hub=HUB)}
    assert [got[q]["utc"] for q in (1, 2, 3, 4)] == [T0 + 1000, T0 + 5000, T0 + 61500, T0 + 63000]
    assert got[7].get("utc") is None and got[8].get("utc") is None  # no link across a power-on
    s.close()


def test_boots_before_the_clock_are_dated_through_the_chain_and_again_after_a_jump_on_sqlite(tmp_path):
    chained_boots(str(tmp_path / "chain.db"))


def test_boots_before_the_clock_are_dated_through_the_chain_and_again_after_a_jump_on_postgresql(pg_url):  # noqa: F811
    chained_boots(pg_url)
