# Heart-rate summaries: per-minute mean/min/max, one reading per 15
# minutes, nothing lost at the edges. Both runtimes.

from hub import reading
from hub.summary import HeartRateSummary


def test_minutes_and_runs():
    s = HeartRateSummary(minutes=3)
    outs = []
    t = 0
    for minute in range(7):
        for sec in range(60):
            bpm = 60 + minute + (sec % 3)  # 60..62, 61..63, ...
            r = s.add(bpm, t, 1700000000 + t // 1000)
            if r:
                outs.append(r)
            t += 1000
    assert len(outs) == 2
    first = outs[0]
    assert first[reading.VAL] == [61, 62, 63] and first[reading.PERIOD] == 60000000
    assert first[reading.CTX]["min"] == [60, 61, 62] and first[reading.CTX]["max"] == [62, 63, 64]
    assert first[reading.DTS] == 1700000000 and first[reading.UNIT] == "/min"
    tail = s.flush()
    assert tail[reading.VAL] == [67]  # the 7th minute, flushed at disconnect
    assert s.flush() is None
    r = reading.complete(first, 1, b"\x00" * 7, [1, 1])
    assert reading.decode(reading.encode(r)) == r


def test_sparse_values_close_minutes_by_time():
    s = HeartRateSummary(minutes=15)
    s.add(70, 0)
    s.add(80, 30000)
    s.add(90, 125000)  # more than a minute later: the first minute closes with 70, 80
    r = s.flush()
    assert r[reading.VAL] == [75, 90] and reading.DTS not in r
