# A whole-firmware update through the ESP32's OTA partitions (hub/otafw.py over
# the board glue hub/ports/esp32ota.py), on both runtimes, against the esp32
# stand-in (tests/fw/esp32stand.py: esp32.Partition as esp32_partition.c
# behaves, and the bootloader's roll-back): applied into the idle partition,
# booted as a trial, confirmed; a trial that resets unconfirmed rolled back by
# the bootloader and noticed; an altered image, a signed image that is no app,
# one too big for the partition, another kind of release: refused, the boot
# partition untouched; a power cut on either side of set_boot.

import gc
import os

import esp32stand
from esp32stand import PAGE, Chip, Partition
from fwtest import data_path, raises
from hub import otafw, release
from hub.otaslot import OtaError, Stage
from hub.ports.esp32ota import Slots

MPY_HEAP = "200k"  # two 16 KB partitions, Ed25519 and SHA-512
CS = 1024
BOARD = "esp32-devkit"


def _read(name):
    with open(data_path(name), "rb") as f:
        return f.read()


KEY = _read("release/release.pub")


def _staged(name, cs=CS):
    """A stage (hub/otaslot.py, in a fresh folder) holding the whole release, as the fetch leaves it."""
    root = "/tmp/samband-otafw-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(root)
    rel = _read(name)
    man, sig, start = release.split_header(rel)
    st = Stage(root)
    st.start(rel[:start], cs, release.parse_manifest(man))
    img = rel[start:]
    for i in range(0, len(img), cs):
        st.put(i // cs, img[i:i + cs])
    assert st.complete()
    return st, img


def _chip(**kw):
    Partition.chip = None
    gc.collect()  # the last chip's partitions, before two more (the unix port's heap is small)
    Partition.chip = Chip(**kw)
    return Partition.chip, Slots(Partition)


def test_apply_trial_confirm():
    chip, slots = _chip()
    st, img = _staged("ota/fw.sbr")
    assert (slots.running(), slots.booting()) == ("ota_0", "ota_0")
    m = otafw.apply(st, KEY, BOARD, "1.0.0", slots)
    assert m["v"] == "1.1.0" and m["kind"] == "firmware"
    new = chip.flash["ota_1"]
    assert new[:len(img)] == img and new[len(img):3 * PAGE] == b"\xff" * (3 * PAGE - len(img))
    assert slots.booting() == "ota_1" and slots.running() == "ota_0" and otafw.state(st, slots) == "switched"
    chip.reset()  # the hub resets into its trial
    assert slots.running() == "ota_1" and chip.states["ota_1"] == "pending"
    assert otafw.state(st, slots) == "trial"
    otafw.confirm(st, slots)  # reached the broker and reported
    assert chip.states["ota_1"] == "valid" and otafw.state(st, slots) is None
    chip.reset()
    assert slots.running() == "ota_1"  # confirmed: it stays


def test_unconfirmed_trial_is_rolled_back_by_the_bootloader():
    chip, slots = _chip()
    st, _ = _staged("ota/fw.sbr")
    otafw.apply(st, KEY, BOARD, "1.0.0", slots)
    chip.reset()
    assert otafw.state(st, slots) == "trial"
    chip.reset()  # the trial crashed (or lost power) before it confirmed
    assert slots.running() == "ota_0" and slots.booting() == "ota_0" and chip.states["ota_1"] == "aborted"
    assert otafw.state(st, slots) == "rolled-back"


def test_refused_releases_never_switch():
    for name, code in (("ota/fw-altered.sbr", "hash"), ("ota/fw-notapp.sbr", "hash"), ("ota/good.sbr", "kind")):
        chip, slots = _chip()
        st, _ = _staged(name)
        e = raises((OtaError, release.ReleaseError), otafw.apply, st, KEY, "vhub" if code == "kind" else BOARD,
                   "1.0.0", slots)
        assert e.code == code, (name, e.code)
        assert slots.booting() == "ota_0" and otafw.state(st, slots) is None, name
        chip.reset()
        assert slots.running() == "ota_0", name
    chip, slots = _chip(size=2 * PAGE)  # 10 KB do not fit two pages
    st, _ = _staged("ota/fw.sbr")
    e = raises(OtaError, otafw.apply, st, KEY, BOARD, "1.0.0", slots)
    assert e.code == "too-long" and chip.flash["ota_1"] == b"\xff" * 2 * PAGE and slots.booting() == "ota_0"
    chip, slots = _chip(labels=("factory",))  # a firmware without OTA partitions
    st, _ = _staged("ota/fw.sbr")
    raises(OSError, otafw.apply, st, KEY, BOARD, "1.0.0", slots)


class _Cut(Exception):
    pass


class _CutSlots(Slots):
    """The glue with a power cut just before or just after set_boot."""

    def __init__(self, partition, after):
        Slots.__init__(self, partition)
        self.after = after

    def switch(self, part):
        if self.after:
            Slots.switch(self, part)
        raise _Cut()


def test_power_cut_on_either_side_of_set_boot():
    for after, want in ((False, "apply"), (True, "trial")):
        chip, _ = _chip()
        slots = _CutSlots(Partition, after)
        st, _ = _staged("ota/fw.sbr")
        raises(_Cut, otafw.apply, st, KEY, BOARD, "1.0.0", slots)
        chip.reset()  # power back
        assert otafw.state(st, slots) == want, (after, otafw.state(st, slots))
        assert slots.running() == ("ota_1" if after else "ota_0")
        if not after:  # the switch never happened: apply again from the start
            slots.after = None
            otafw.apply(st, KEY, BOARD, "1.0.0", Slots(Partition))
            chip.reset()
            assert otafw.state(st, slots) == "trial" and slots.running() == "ota_1"


def test_stand_in_behaves_as_esp32_partition_c():
    chip, _ = _chip()
    p = Partition("ota_1")
    assert p.info()[3:5] == (4 * PAGE, "ota_1") and p.ioctl(4, 0) == 4 and p.ioctl(5, 0) == PAGE
    e = raises(OSError, p.writeblocks, 0, b"\x00" * 100)  # erase_range needs whole sectors
    assert e.args[0] == -esp32stand.ESP_ERR_INVALID_ARG
    p.writeblocks(1, b"\x0f" * PAGE)
    p.writeblocks(1, b"\xf0" * 4, 0)  # extended write: no erase, bits only cleared
    buf = bytearray(6)
    p.readblocks(1, buf)
    assert buf == b"\x00" * 4 + b"\x0f\x0f"
    e = raises(OSError, p.set_boot)  # not an app image
    assert e.args[0] == -esp32stand.ESP_ERR_OTA_VALIDATE_FAILED
    raises(OSError, Partition, "nvs")
    raises(ValueError, Partition, 7)
    assert Partition(Partition.RUNNING).get_next_update().info()[4] == "ota_1"
    chip, _ = _chip(rollback=False)
    raises(OSError, Partition.mark_app_valid_cancel_rollback)
