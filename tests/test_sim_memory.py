"""Emulated devices given a state folder keep their memory across bridges, as real devices keep
theirs across a restart of the rig: a meter's records and record numbers, what a cuff still
holds for indication, the device clock. Without one they start new (the tests' default)."""

from samband.bridge.server import BleBridge

SPECS = [{"kind": "glucose", "address": "C0:5A:4B:00:00:01", "records": 5},
         {"kind": "cgm", "address": "C0:5A:4B:00:00:02", "records": 3},
         {"kind": "bp", "address": "C0:5A:4B:00:00:04", "stored": 2}]


def _memory(b):
    g, c, bp = b.sim("glucose"), b.sim("cgm"), b.sim("bp")
    return ([(r["seq"], r["time"], r["meas"], r["ctx"]) for r in g.recs], g.next_seq,
            [(r["toff"], r["meas"]) for r in c.recs], c.toff, c.start_time, list(bp.store.items), bp.offset)


def test_devices_remember_across_bridges(tmp_path):
    with BleBridge(devices=SPECS, state=tmp_path) as b:
        b.call(b.sim("glucose").measure(2))
        b.call(b.sim("cgm").tick(1))
        b.call(b.sim("bp").clock_offset(3600))
        b.sim("bp").store.items.pop(0)  # confirmed by a collector: the cuff deletes it
        before = _memory(b)
    assert before[1] == 8 and len(before[0]) == 7 and isinstance(before[0][0][1], tuple)
    with BleBridge(devices=SPECS, state=tmp_path) as b:
        after = _memory(b)
        assert after == before
        assert b.sim("bp").offset == 3600  # the cuff's clock is still an hour ahead
        b.call(b.sim("glucose").measure(1))
        assert b.sim("glucose").recs[-1]["seq"] == 8  # numbering goes on, no record number twice
    with BleBridge(devices=SPECS) as b:  # no state folder: a new device every time
        fresh = _memory(b)
    assert fresh[1] == 6 and len(fresh[5]) == 2 and fresh[6] == 0


def test_a_torn_memory_file_starts_the_device_new(tmp_path):
    with BleBridge(devices=SPECS, state=tmp_path):
        pass
    (tmp_path / "c05a4b000001.json").write_text("{not json")
    with BleBridge(devices=SPECS, state=tmp_path) as b:
        assert b.sim("glucose").next_seq == 6 and len(b.sim("glucose").recs) == 5
