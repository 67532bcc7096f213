# A whole-firmware release through the hub's update service (hub/ota.py Ota with the
# port's firmware slots, hub/otafw.py), on both runtimes, against the esp32 stand-in
# (tests/fw/esp32stand.py): offered, fetched, applied into the idle OTA partition,
# booted by the bootloader as a trial, confirmed once the hub has reported; the
# firmware's own version (its app descriptor) beside the application's; an
# unconfirmed trial rolled back by the bootloader and never tried again; a power cut
# at every step of the apply ends on the old image or the new one; a board without
# OTA partitions refuses the offer, counted and said in words.

import gc
import os

from esp32stand import Chip, Partition, app_image
from fwtest import data_path, raises
from hub import cbor, ota, otafw, release
from hub.ports.esp32ota import Slots

MPY_HEAP = "200k"  # two 16 KB partitions, Ed25519 and SHA-512
CS = 1024
BOARD = "esp32-devkit"
APP = "0.1.0"  # hub.VERSION: a firmware release leaves it as it is


def _read(name):
    with open(data_path(name), "rb") as f:
        return f.read()


KEY = _read("release/release.pub")
REL = _read("ota/fw.sbr")
_, _, START = release.split_header(REL)
PARTS = [REL[START + i:START + i + CS] for i in range(0, len(REL) - START, CS)]


class _Tel:
    def __init__(self):
        self.got = []

    def __call__(self, mdc, val):
        self.got.append(mdc)


def _root():
    root = "/tmp/samband-otafws-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(root)
    return root


def _chip():
    Partition.chip = None
    gc.collect()
    Partition.chip = Chip()
    return Partition.chip


def _hub(root, tel=None, log=None, step=ota.nostep, slots=True):
    o = ota.Ota(BOARD, APP, KEY, {"window": 16}, tel, log, fw=root, step=step,
                slots=Slots(Partition) if slots else None)
    o.start()
    return o


def _fetch(o):
    o.on_message(cbor.dumps({"o": REL[:START], "cs": CS}))
    assert o.state == "fetch", (o.state, o.refused)
    for i, p in enumerate(PARTS):
        o.on_message(cbor.dumps({"c": i, "d": p}))
    assert o.state == "apply" and o.due(0, 0)


def test_image_version_is_the_app_descriptors():
    assert otafw.image_version(app_image("v1.25.0")) == "1.25.0"
    assert otafw.image_version(app_image("2.3")) == "2.3"
    for said in ("v1.25.0-12-gabc", "", "1.2.3.4", "\xff"):  # not a release version: older than every one
        assert otafw.image_version(app_image(said)) == otafw.NO_VERSION, said
    no_magic = app_image("1.2.3")
    no_magic[32] = 0
    assert otafw.image_version(no_magic) == otafw.NO_VERSION
    assert otafw.image_version(app_image("1.2.3")[:60]) == otafw.NO_VERSION
    assert otafw.image_version(b"\x00" + app_image("1.2.3")[1:]) == otafw.NO_VERSION
    assert otafw.image_version(app_image("v9.1.0") + bytearray(b"\xfe" * 40)) == "9.1.0"


def test_fetch_apply_reboot_trial_confirm():
    chip = _chip()
    root = _root()
    tel = _Tel()
    o = _hub(root, tel)
    assert o.state == "none" and o.status()["fv"] == "1.0.0" and o.status()["v"] == APP
    _fetch(o)
    assert o.run_apply() and o.state == "reboot" and chip.boot == "ota_1" and chip.running == "ota_0"
    assert tel.got == [ota.MDC_HUB_OTA_OFFER, ota.MDC_HUB_OTA_FETCHED, ota.MDC_HUB_OTA_SWITCHED]
    chip.reset()  # the hub resets; the bootloader boots the new image once, as a trial
    o = _hub(root, tel)
    assert o.state == "trial" and o.trial and chip.states["ota_1"] == "pending"
    s = o.status()
    assert s["fv"] == "1.1.0" and s["v"] == APP and s["st"] == "trial"  # the application is the same
    assert not o.trial_expired(299999) and o.trial_expired(300000)
    assert o.reported() and o.state == "done" and chip.states["ota_1"] == "valid"
    assert tel.got[-2:] == [ota.MDC_HUB_OTA_TRIAL, ota.MDC_HUB_OTA_CONFIRMED]
    assert raises(OSError, os.stat, root + "/ota")  # nothing staged any more
    chip.reset()
    o = _hub(root, tel)
    assert chip.running == "ota_1" and o.state == "none" and o.status()["fv"] == "1.1.0"
    o.on_message(cbor.dumps({"o": REL[:START], "cs": CS}))  # the rollout's retained offer, still there
    assert o.state == "done" and o.refused is None  # it runs it: no refusal, nothing fetched again
    ota.remove_tree(root)


def test_unconfirmed_trial_is_rolled_back_and_never_tried_again():
    chip = _chip()
    root = _root()
    tel = _Tel()
    log = []  # the service's log lines (it calls log(text))
    o = _hub(root, tel)
    _fetch(o)
    assert o.run_apply()
    chip.reset()
    o = _hub(root, tel)
    assert o.state == "trial"
    chip.reset()  # the trial crashed, hung (trial_s) or lost power before it reported
    o = _hub(root, tel, log.append)
    assert chip.running == "ota_0" and chip.states["ota_1"] == "aborted"
    assert o.state == "failed" and o.status()["fv"] == "1.0.0" and tel.got[-1] == ota.MDC_HUB_OTA_ROLLED_BACK
    assert any("not confirmed" in t for t in log), log
    o.on_message(cbor.dumps({"o": REL[:START], "cs": CS}))  # offered again: not fetched
    assert o.state == "failed" and not o.wants(0, lambda a, b: a - b) and not o.due(0, 0)
    o = _hub(root, tel)  # and after another reset
    assert o.state == "failed" and chip.running == "ota_0"
    ota.remove_tree(root)


class _Cut(Exception):
    pass


class _Power:
    """Counts the apply's flash steps (partition page writes, the stage's marks, set_boot)
    and cuts the power at step `at`."""

    def __init__(self, at):
        self.at = at
        self.n = 0

    def __call__(self, name=None):
        self.n += 1
        if self.n == self.at:
            raise _Cut()


class _CutSlots(Slots):
    def __init__(self, partition, power):
        Slots.__init__(self, partition)
        self.power = power

    def write(self, part, block, data):
        self.power()
        Slots.write(self, part, block, data)

    def switch(self, part):
        self.power()
        Slots.switch(self, part)
        self.power()  # set_boot returned, the stage not marked yet


def test_power_cut_at_every_step_of_apply_ends_on_the_old_or_the_new_image():
    at = 1
    ends = {"old": 0, "new": 0}
    chip = o = None
    while True:
        chip = o = None  # the last round's chip, before two more 16 KB partitions
        chip = _chip()
        root = _root()
        o = _hub(root)
        _fetch(o)
        power = _Power(at)
        o.stage.step = power
        o.slots = _CutSlots(Partition, power)
        try:
            o.run_apply()
            cut = False
        except _Cut:
            cut = True
        if not cut:
            assert o.state == "reboot"
            break
        chip.reset()  # power back: the bootloader boots one whole image
        assert chip.running in ("ota_0", "ota_1") and chip.flash[chip.running][0] == 0xE9, at
        o = _hub(root)
        if chip.running == "ota_0":
            ends["old"] += 1
            assert o.state == "apply", (at, o.state)  # fetched: applied again from the start
            assert o.run_apply()
            chip.reset()
            o = _hub(root)
        else:
            ends["new"] += 1
        assert o.state == "trial" and o.reported() and chip.running == "ota_1", at
        assert o.status()["fv"] == "1.1.0" and chip.states["ota_1"] == "valid"
        ota.remove_tree(root)
        at += 1
    ota.remove_tree(root)
    # cut before each of 9 steps: 3 page writes, the fw-to step and its mark, set_boot, just after
    # it, the fw-set step and its mark; the last three boot the new image (otadata names it)
    assert at == 10 and ends == {"old": 6, "new": 3}, (at, ends)


def test_a_board_without_firmware_partitions_refuses_the_offer():
    root = _root()
    tel = _Tel()
    log = []  # the service's log lines (it calls log(text))
    o = _hub(root, tel, log.append, slots=False)
    o.on_message(cbor.dumps({"o": REL[:START], "cs": CS}))
    assert o.state == "refused" and o.refused == "kind"
    assert o.counters["no_fw_slots"] == 1 and o.counters["bad"] == 1
    assert tel.got == [ota.MDC_HUB_OTA_REFUSED]
    assert "no OTA app partitions" in log[-1] and "tree releases only" in log[-1], log
    s = o.status()
    assert s["st"] == "refused" and s["r"] == "kind" and "fv" not in s
    assert raises(OSError, os.stat, root + "/ota")  # nothing staged
    ota.remove_tree(root)


class _NoHeapOnce(Slots):
    def __init__(self, partition):
        Slots.__init__(self, partition)
        self.failed = False

    def write(self, part, block, data):
        if not self.failed:
            self.failed = True
            raise MemoryError()
        Slots.write(self, part, block, data)


def test_out_of_heap_while_applying_applies_again_later():
    chip = _chip()
    root = _root()
    log = []  # the service's log lines (it calls log(text))
    o = _hub(root, log=log.append)
    _fetch(o)
    o.slots = _NoHeapOnce(Partition)
    assert not o.run_apply() and o.state == "apply" and o.counters["nomem"] == 1 and chip.boot == "ota_0"
    assert "out of heap" in log[-1] and o.due(0, 0)  # nothing refused or dropped
    assert o.run_apply() and chip.boot == "ota_1"
    ota.remove_tree(root)
