"""The journal on the virtual hub under load, killed with SIGKILL at random
moments (VirtualHub.power_cut) 200 times, restarted each time.

tests/data/journal_main.py runs as the hub's main.py (heap 100k): it appends
without pause, offers pending records as the uplink would and acknowledges a
random part of them out of order, printing every promise with a checksum.
The host reads the console, pulls the plug, and finally reads the journal's
files itself with the same hub.journal module under CPython:

* zero lost: every record whose append returned is on flash, intact, and
  pending unless an ack of it had started;
* zero duplicates delivered: no record is offered again once an ack of it
  has returned, across every restart;
* no sequence number is handed out twice.

Then it damages the journal's files and boots once more: the hub comes up,
counts the damage, and goes on appending.
"""

import os
import random
import time

from conftest import TESTS, firmware_tree
from host_kit import CheckedConsole

from hub.journal import Journal
from hub.reading import PRIO_ALARM
from hub.segment import ALARM, ROUTINE
from samband.vhub import Flash, VirtualHub, deploy

KILLS = int(os.environ.get("SAMBAND_JOURNAL_KILLS", "200"))
MAIN = TESTS / "data" / "journal_main.py"
SEG = 2048
CAPACITY = 768 * SEG  # more than 200 boots can append with the uplink down: no eviction here


def payload(seq):
    n = 12 + (seq * 37) % 50
    return bytes((seq * 7 + i * 13) & 0xFF for i in range(n))


def make_flash(tmp_path):
    flash = tmp_path / "flash"
    deploy(firmware_tree(), flash)
    Flash(flash).write("/main.py", MAIN.read_bytes())
    return flash


def analyse(lines):
    """Replay the console; returns (appended {seq: prio}, acks started, acks returned, boots)."""
    appended, started, acked = {}, set(), set()
    top = 0  # highest seq any boot has handed out
    boots = []
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "BOOT":
            nxt, pend, alarms, damaged, torn = (int(x) for x in rest.split())
            assert nxt > top, f"boot would hand out {nxt} again (seen up to {top})"
            assert damaged == 0, line
            boots.append((nxt, pend, alarms, torn))
        elif kind == "A":
            seq, prio = (int(x) for x in rest.split())
            assert seq not in appended, f"seq {seq} appended twice"
            assert seq > top, f"seq {seq} handed out after {top}"
            top = seq
            appended[seq] = prio
        elif kind == "S":
            seq = int(rest)
            assert seq not in acked, f"seq {seq} offered again after its ack returned"
            assert seq in appended or seq <= top, f"offered seq {seq} was never appended"
        elif kind == "k":
            started.update(int(x) for x in rest.split(","))
        elif kind == "K":
            acked.update(int(x) for x in rest.split(","))
    return appended, started, acked, boots


def check_flash(flash, appended, started, acked):
    copy = Flash(flash).export("/journal", flash.parent / "journal-copy")  # the image's journal, as files
    j = Journal(str(copy), capacity=CAPACITY, segment_size=SEG)
    on_flash = {}
    for seq, prio, data, _ctx in j.records():
        assert seq not in on_flash, f"seq {seq} twice on flash"
        assert bytes(data) == payload(seq), f"seq {seq} damaged"
        on_flash[seq] = (prio, j.is_pending(seq, ALARM if prio == PRIO_ALARM else ROUTINE))
    st = j.stats()
    assert st["evicted"] == 0, f"the journal evicted {st['evicted']} records: give the test more capacity"
    lost = []
    for seq, prio in appended.items():
        s = ALARM if prio == PRIO_ALARM else ROUTINE
        if seq in on_flash:
            assert on_flash[seq][0] == prio
            pending = on_flash[seq][1]
            assert not (pending and seq in acked), f"seq {seq} acked but pending"
            assert pending or seq in started, f"seq {seq} delivered without an ack"
        elif seq in acked or (seq in started and not j.is_pending(seq, s)):
            continue  # delivered, and its segment reclaimed
        else:
            lost.append(seq)
    assert not lost, f"{len(lost)} durable records lost: {lost[:20]}"
    j.close()
    return on_flash, st


def test_200_kills_under_load_lose_nothing_and_deliver_nothing_twice(tmp_path):
    flash = make_flash(tmp_path)
    rng = random.Random(20261129)
    t0 = time.monotonic()
    hub = VirtualHub(flash, deploy_firmware=False)
    hub.start()
    con = CheckedConsole(hub.port)
    try:
        for _i in range(KILLS):
            if rng.random() < 0.85:
                con.wait_boot(con.boots + 1)  # mounted: now kill it while it works
                time.sleep(rng.uniform(0, 0.12))
            else:
                # while it starts or mounts: the interpreter the last cut started must exist,
                # or this cut lands on a plug already pulled and boots nothing (seen under load)
                hub.wait_boots(_i + 1, 30)
                time.sleep(rng.uniform(0, 0.03))
            hub.power_cut()
        con.wait_boot(con.boots + 1)
        time.sleep(0.1)
    finally:
        hub.stop()
        time.sleep(0.1)
        con.close()
    took = time.monotonic() - t0
    appended, started, acked, boots = analyse(con.lines)
    on_flash, st = check_flash(flash, appended, started, acked)
    print(f"{KILLS} kills in {took:.1f}s: {hub.boots} boots, {len(boots)} mounted, {len(appended)} appends seen, "
          f"{len(acked)} acked, {len(on_flash)} on flash ({st['pending']} pending), "
          f"{sum(b[3] for b in boots)} torn tails, {con.cut} console lines cut")
    assert hub.boots >= KILLS + 1
    assert len(boots) >= KILLS * 0.8 and len(appended) > KILLS * 5 and len(acked) > KILLS
    assert any(p == PRIO_ALARM for p in appended.values())


def test_a_damaged_journal_boots_counts_and_carries_on(tmp_path):
    flash = make_flash(tmp_path)
    hub = VirtualHub(flash, deploy_firmware=False, env={"SAMBAND_JOURNAL_NOACK": "1"})
    hub.start()
    con = CheckedConsole(hub.port)
    try:
        con.wait_boot(1)
        con.wait(r"A 600 ", 0, timeout=15)
        hub.power_cut()
        con.wait_boot(2)
        hub.stop()
        # flip bytes in the middle of three segment files, truncate a fourth (on a copy, put back onto the image)
        copy = Flash(flash).export("/journal", tmp_path / "journal-copy")
        segs = sorted((copy / "seg").iterdir())
        assert len(segs) >= 5
        r = random.Random(7)
        for p in segs[:3]:
            b = bytearray(p.read_bytes())
            for _ in range(3):
                b[r.randrange(40, len(b) - 40)] ^= 1 << r.randrange(8)
            p.write_bytes(bytes(b))
        p = segs[3]
        p.write_bytes(p.read_bytes()[:-7])
        for name in ("state.0", "state.1"):
            s = copy / name
            if s.exists() and s.stat().st_size:  # a copy the power cut caught mid-write may be empty
                b = bytearray(s.read_bytes())
                b[len(b) // 2] ^= 0x10
                s.write_bytes(bytes(b))
                break
        Flash(flash).load("/journal", copy)
        mark = len(con.lines)
        hub = VirtualHub(flash, deploy_firmware=False, env={"SAMBAND_JOURNAL_NOACK": "1"})
        hub.start()
        con2 = CheckedConsole(hub.port)
        try:
            _, m = con2.wait(r"BOOT (\d+) (\d+) (\d+) (\d+) (\d+)", 0, timeout=15)
            nxt, damaged = int(m.group(1)), int(m.group(4))
            assert damaged >= 3, m.group(0)
            top = max(int(line.split()[1]) for line in con.lines[:mark] if line.startswith("A "))
            assert nxt > top
            con2.wait(rf"A {nxt + 50} ", 0, timeout=15)  # and it goes on appending
        finally:
            hub.stop()
            con2.close()
    finally:
        hub.stop()
        con.close()
