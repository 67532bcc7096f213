"""The journal's 70 % warning end to end: a virtual hub (tests/data/uplink_main.py with the
Store's fill watch, hub/store.py) whose receiver is down fills its journal past 70 % and
journals one MDC_HUB_JOURNAL_FILL reading; the receiver comes back, the backlog drains,
and the hub journals one more under 60 %; both reach the receiver's database in that
order, and the alert engine's causes (samband/receiver/alerts_causes.py), fed the stored
rows one by one as a poll between them would see them, raise journal-filling with the
first and drop it with the second."""

import json

from conftest import TESTS, firmware_tree

from hub.store import FILL_CLEAR_PCT, FILL_WARN_PCT, MDC_HUB_JOURNAL_FILL
from samband.receiver import alerts_rules
from samband.receiver.alerts_causes import Causes
from samband.rig.uplink import UplinkRig

MAIN = TESTS / "data" / "uplink_main.py"
HUB = "00005a4d00f1"
TOTAL = 160  # about 82 % of 8 segments of 2048 bytes (70 % at about 137 records, full at about 195)
TIMEOUT = 90
RULES = """
[groups.technician]
ack_timeout_s = 600
channels = [{type = "webhook", url = "http://127.0.0.1:9/tech"}]
[[routes]]
kinds = ["*"]
groups = ["technician"]
"""


def _fill_lines(h):
    """The hub's fill telemetry as it made it: [(mdc, per cent)] from its telemetry log."""
    out = []
    for line in (h._read("/uplink.bearers") or b"").decode().split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "T" and int(parts[1]) == MDC_HUB_JOURNAL_FILL:
            out.append(json.loads(parts[2]))
    return out


def test_hub_warns_at_70_percent_and_clears_under_60(tmp_path):
    rig = UplinkRig(tmp_path / "rig", firmware=firmware_tree())
    try:
        h = rig.add_hub(HUB, MAIN, {"total": TOTAL, "interval_ms": 10, "capacity": 8 * 2048,
                                    "journal_telemetry": True, "fill": True})
        rig.start(receivers=0)  # the broker is up, nobody acknowledges: the backlog stays
        rig.wait(lambda: h.state().get("made") == TOTAL, TIMEOUT, "every reading made")
        rig.wait(lambda: len(_fill_lines(h)) == 1, TIMEOUT, "the 70 % warning")
        st = h.state()
        assert st["fill"] >= FILL_WARN_PCT and st["pending"] >= TOTAL, st
        [warn] = _fill_lines(h)
        assert FILL_WARN_PCT <= warn < st["fill"] < 95, st  # once, at the crossing
        rig.start_receiver()

        def stored():
            cur = rig.store.conn.cursor()
            cur.execute("SELECT hub, seq, device, mdc, prio, hts, received, reading FROM readings "
                        "WHERE hub = ? ORDER BY seq", (HUB,))
            rows = cur.fetchall()
            rig.store.conn.commit()
            return rows

        rig.wait(lambda: sum(1 for r in stored() if r[3] == MDC_HUB_JOURNAL_FILL) == 2, TIMEOUT,
                 "the backlog drained and the all-clear stored")
        rig.wait(lambda: h.state().get("pending") == 0, TIMEOUT, "nothing pending on the hub")
        assert _fill_lines(h)[1] < FILL_CLEAR_PCT and h.state()["fill"] < FILL_CLEAR_PCT
        rows = stored()
    finally:
        rig.stop()
    fills = [json.loads(r[7])["val"] for r in rows if r[3] == MDC_HUB_JOURNAL_FILL]
    assert fills == _fill_lines(h)
    assert sum(1 for r in rows if r[3] != MDC_HUB_JOURNAL_FILL and r[4] == 0) == TOTAL  # none evicted
    causes = Causes(alerts_rules.parse(RULES))
    seen = []
    for hub, _seq, dev, mdc, prio, hts, received, text in rows:
        causes.reading(hub, dev, mdc, prio, hts, lambda text=text: text, received)
        active = [v for v in causes.active(received, []).values() if v[0] == "journal-filling"]
        if not seen or seen[-1] != bool(active):
            seen.append(bool(active))
        if active:
            assert active[0][3]["text"] == f"hub storage {fills[0]} % full: offline for long?"
    assert seen == [False, True, False]
