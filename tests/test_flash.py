"""The virtual hub's flash is a littlefs image: a power cut loses what a
board's would (vhub/flash.py, docs/journal.md "The virtual hub's flash").

tests/data/flash_main.py runs as the hub's main.py and says on its console
what it has done; the host pulls the plug (VirtualHub.power_cut, SIGKILL)
and reads the image afterwards with littlefs-python (Flash):

* a file written and closed survives a cut; bytes written and not synced
  (no close, no flush) are gone, as littlefs on a board drops them;
* a record handed to the journal's group commit and not yet committed is
  gone after a cut, and its producer was never told it was stored;
* the image survives 50 cuts during filesystem and journal churn: it
  mounts on the host, the hub boots on it, nothing committed is lost.

The host-side API (create, write, read, list, lock, snapshot) is checked too.
"""

import random
import time
from contextlib import contextmanager

import pytest
from conftest import TESTS, firmware_tree
from host_kit import CheckedConsole

from hub.journal import Journal
from samband.vhub import Flash, FlashError, VirtualHub, deploy

MAIN = TESTS / "data" / "flash_main.py"


def flash_for(tmp_path, mode):
    folder = tmp_path / "flash"
    deploy(firmware_tree(), folder)
    Flash(folder).write_files({"/main.py": MAIN.read_bytes(), "/flashtest.mode": mode.encode()})
    return folder


@contextmanager
def running_on(folder, **kw):
    """(hub, console) of a virtual hub started on folder (no firmware deployed over it);
    stopped and the console closed however the test ends."""
    hub = VirtualHub(folder, deploy_firmware=False, **kw)
    hub.start()
    con = CheckedConsole(hub.port)
    try:
        yield hub, con
    finally:
        hub.stop()
        con.close()


def journal_records(flash, dest):
    j = Journal(str(flash.export("/journal", dest)), capacity=64 * 4096, segment_size=4096)
    out = {seq: bytes(data) for seq, prio, data, ctx in j.records()}
    stats = j.stats()
    j.close()
    return out, stats


def test_a_write_not_synced_is_lost_at_a_cut_and_a_synced_one_survives(tmp_path):
    folder = flash_for(tmp_path, "files")
    with running_on(folder) as (hub, con):
        con.wait(r"WRITTEN$")
        hub.power_cut()
    flash = Flash(folder)
    assert flash.read("/synced.txt") == b"synced"  # closed: committed; the append after it was not
    # created (its directory entry commits at open), but none of the 3000 bytes written
    assert flash.read("/unsynced.txt") == b""


def test_a_staged_record_not_committed_is_lost_and_its_producer_was_not_told(tmp_path):
    folder = flash_for(tmp_path, "journal")
    with running_on(folder) as (hub, con):
        _, m = con.wait(r"STORED (\d+)$")
        durable = int(m.group(1))
        i, m = con.wait(r"STAGED (\d+)$")
        assert int(m.group(1)) == durable + 2  # the waiting record took durable + 1: it is staged, not committed
        hub.power_cut()
    assert [line for line in con.lines if line.startswith("STORED")] == [f"STORED {durable}"]
    records, stats = journal_records(Flash(folder), tmp_path / "journal")
    assert records == {durable: b"durable"}, records
    assert stats["damaged"] == 0 and stats["torn"] == 0


CUTS = 50


def test_the_image_survives_50_cuts_and_mounts(tmp_path):
    folder = flash_for(tmp_path, "churn")
    rng = random.Random(20261202)
    boots = []  # (counter at boot, last N printed by the boot before)
    seen = 0
    with running_on(folder, log=print) as (hub, con):
        for _ in range(CUTS + 1):
            i, m = con.wait(r"BOOT (-?\d+) (\d+) (\d+)$", seen)
            seen = i + 1
            last = max([int(x.split()[1]) for x in con.lines[:i] if x.startswith("N ")] or [-1])
            boots.append((int(m.group(1)), int(m.group(2)), last))
            if len(boots) > CUTS:
                break
            con.wait(r"N \d+$", seen)  # working: cut it somewhere in the middle
            time.sleep(rng.uniform(0, 0.05))
            hub.power_cut()
    for counter, damaged, last in boots:
        # the counter is replaced by rename after its file is closed, before N is printed:
        # every N the console showed is on flash; at most the one being written is lost
        assert counter >= last, (counter, last)
        assert damaged == 0
    assert boots[-1][0] > CUTS  # it made progress across the cuts
    flash = Flash(folder)
    files = flash.listing("/")  # littlefs-python mounts what 50 cuts left
    assert "/counter" in files and "/board.json" in files
    assert int(flash.read("/counter")) >= boots[-1][0]
    records, stats = journal_records(flash, tmp_path / "journal")
    assert stats["damaged"] == 0 and records
    assert all(data == b"record %d" % int(data.split()[1]) for data in records.values())


def test_host_side_create_write_read_list(tmp_path):
    f = Flash(tmp_path / "f").ensure()
    assert f.image.stat().st_size == 2 * 1024 * 1024
    f.write_files({"/a/b/c.txt": b"hello", "/top": b"x" * 10000})
    assert f.read("/a/b/c.txt") == b"hello" and f.listing("/") == {"/a/b/c.txt": 5, "/top": 10000}
    with pytest.raises(FileNotFoundError):
        f.read("/nothing")
    f.remove("/top")
    assert f.listing("/a") == {"/a/b/c.txt": 5} and f.files() == {"/a/b/c.txt": b"hello"}
    total, used = f.stats()
    assert total == 2 * 1024 * 1024 and 0 < used < 10 * 4096
    with pytest.raises(FlashError, match="not a whole number"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "flash.img").write_bytes(b"\0" * 100)
        Flash(tmp_path / "bad").read("/x")


def test_an_older_flash_folder_is_refused_in_one_line_or_converted(tmp_path):
    old = tmp_path / "old"
    (old / "keys").mkdir(parents=True)
    (old / "keys" / "hub.key").write_bytes(b"k" * 32)
    with pytest.raises(FlashError, match="older samband.*--convert"):
        Flash(old).ensure()
    assert Flash(old).convert() == 1
    assert Flash(old).read("/keys/hub.key") == b"k" * 32
    assert (old / "pre-image" / "keys" / "hub.key").exists()


def test_a_running_hub_holds_its_image_and_snapshots_read_it(tmp_path):
    folder = flash_for(tmp_path, "churn")
    with VirtualHub(folder, deploy_firmware=False) as hub:
        con = CheckedConsole(hub.port)
        try:
            con.wait(r"N 5$")
            with pytest.raises(FlashError, match="in use by a running virtual hub"):
                Flash(folder).read("/counter")
            with pytest.raises(FlashError, match="in use by a running virtual hub"):
                Flash(folder).write("/x", b"y")
            with pytest.raises(FlashError, match="in use by"):
                VirtualHub(folder, deploy_firmware=False).start()
            before = int(hub.snapshot().read("/counter"))
            con.wait(rf"N {before + 3}$")
            assert int(hub.snapshot().read("/counter")) >= before + 3  # the hub went on after the snapshot
        finally:
            con.close()
    assert Flash(folder).read("/counter")  # released at stop
