# A whole-firmware update through the ESP32's OTA app partitions (docs/ota.md,
# "Whole firmware on the ESP32"): the logic above the board glue
# (hub/ports/esp32ota.py, `slots` here), so that it runs and is tested on
# the unix port against a stand-in for the esp32 module.
#
# The staged release (hub/otaslot.py Stage: fetched chunk by chunk as a tree
# release is) is verified as it streams (signature, board, kind "firmware",
# size and SHA-512) into the idle app partition, one 4 KB erase page at a
# time, and only after the whole image verified is that partition made the
# boot one (set_boot). The bootloader then boots it as a trial
# (ESP_OTA_IMG_PENDING_VERIFY); the hub confirms it (mark_app_valid_cancel_
# rollback) once it has reached the broker and reported, as a folder trial
# is confirmed. A trial that resets first is rolled back by the bootloader
# itself (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE); `state()` notices that at
# the next boot. Two marks in the stage say where the switch stood:
#   fw-to    the label of the partition being switched to (written before set_boot)
#   fw-set   set_boot returned (a cut between the two: boots the new image anyway,
#            since the bootloader follows otadata, so "running fw-to" means trial)
# A power cut while the partition is written leaves the boot partition alone:
# the hub boots what it ran and applies again from the start.

from hub.otaslot import OtaError, nostep, release_module

TO = "fw-to"
SET = "fw-set"
# The firmware image's own version (beside hub.VERSION, which lives in the filesystem
# and which a firmware release does not change) is the one the image carries:
# ESP-IDF puts an esp_app_desc_t at a fixed place in every app image, right after the
# image header (24 bytes) and the first segment's header (8), with its version text
# (PROJECT_VER at build time, e.g. "v1.25.0") at offset 16 of it. So the version is
# read from the running partition (nothing on the filesystem can go stale after a
# re-flash with esptool), and `samband release --kind firmware` refuses an image whose
# descriptor does not say the release's version.
DESC = 32
DESC_MAGIC = b"\x32\x54\xcd\xab"  # ESP_APP_DESC_MAGIC_WORD 0xABCD5432, little-endian
HEAD_BYTES = DESC + 48  # through the descriptor's version[32]
NO_VERSION = "0.0.0"


def image_version(head):
    """The release version an app image's first HEAD_BYTES bytes say ("v" dropped), or
    NO_VERSION: an image built without a version we can read (stock MicroPython from
    git, "v1.25.0-12-gabc") is older than every release, so any release may replace it."""
    if len(head) < HEAD_BYTES or head[0] != 0xE9 or bytes(head[DESC:DESC + 4]) != DESC_MAGIC:
        return NO_VERSION
    v = bytes(head[DESC + 16:DESC + 48])
    end = v.find(b"\0")
    if end >= 0:
        v = v[:end]
    try:
        text = v.decode()
        if text[:1] == "v":
            text = text[1:]
        release_module().parse_version(text)
    except ValueError:  # UnicodeError, ReleaseError
        return NO_VERSION
    return text


def running_version(slots):
    """The firmware version of the image this boot runs (the port's OTA partitions)."""
    return image_version(slots.head(HEAD_BYTES))


class BlockWriter:
    """Image bytes in, whole erase pages out (slots.write), one page buffered."""

    def __init__(self, slots, part, size, block=4096):
        self.slots = slots
        self.part = part
        self.size = size
        self.buf = bytearray(block)
        self.n = 0
        self.block = 0

    def feed(self, data):
        i = 0
        while i < len(data):
            k = min(len(self.buf) - self.n, len(data) - i)
            self.buf[self.n:self.n + k] = data[i:i + k]
            self.n += k
            i += k
            if self.n == len(self.buf):
                self._flush()

    def _flush(self):
        if (self.block + 1) * len(self.buf) > self.size:
            raise OtaError("too-long", "image does not fit the %d-byte partition" % self.size)
        self.slots.write(self.part, self.block, self.buf)
        self.block += 1
        self.n = 0

    def finish(self):
        if self.n:
            for i in range(self.n, len(self.buf)):
                self.buf[i] = 0xFF  # what an erased page reads: the rest of the last page stays erased
            self._flush()


def apply(stage, key, board, running, slots, step=nostep):
    """Verify the staged release into the idle app partition and make it the boot one.
    Returns the manifest; ReleaseError/OtaError refuse (the boot partition untouched)."""
    part, label, size = slots.idle()
    m = stage.manifest
    if m is not None and m["size"] > size:
        raise OtaError("too-long", "image of %d bytes, partition %s has %d" % (m["size"], label, size))
    w = BlockWriter(slots, part, size)
    m = release_module().verify_stream(stage.reader(), key, board, running, w.feed, 1024, "firmware")
    w.finish()
    step("fw-to")
    stage.mark(TO, label)
    try:
        slots.switch(part)  # the image checked again by the IDF (esp_image_verify)
    except OSError as e:
        stage.mark(TO, "")
        raise OtaError("hash", "the partition refused the image as an app (%s)" % e)
    step("fw-set")
    stage.mark(SET, label)
    return m


def state(stage, slots):
    """At boot: where a firmware switch stands. "trial": running the partition switched to,
    not confirmed yet; "rolled-back": it was booted and the bootloader went back; "apply":
    the switch never happened (cut before set_boot returned, not booted), apply again;
    None: no switch under way."""
    to = stage.marked(TO)
    if not to:
        return None
    if slots.running() == to:
        return "trial"
    if stage.marked(SET) == to and slots.booting() != to:
        return "rolled-back"
    if slots.booting() == to:
        return "switched"  # set_boot done, no reset yet (the caller resets)
    return "apply"


def confirm(stage, slots):
    """The trial reached the broker and reported: no roll-back at the next reset."""
    slots.confirm()
    stage.mark(TO, "")
    stage.mark(SET, "")


def boot_state(o):
    """At boot, for hub.ota's Ota o with a staged firmware release: where its switch stood
    (state()). The trial the bootloader booted (confirmed later by o.reported()), its
    roll-back (the release never tried again), or a soft reset after set_boot (o resets);
    None: go on as for any staged release (fetch or apply). Here, not in hub.ota, so that
    a hub without OTA partitions never loads it."""
    from hub import ota
    st = state(o.stage, o.slots) if o.slots is not None else None
    if st == "trial":
        o.trial = True
        o.state = "trial"
        o.tell(ota.MDC_HUB_OTA_TRIAL, o.offered_version())
    elif st == "rolled-back":  # the bootloader went back: never this release again
        o.tell(ota.MDC_HUB_OTA_ROLLED_BACK, o.offered_version())
        o.fail()
        o.stage.mark(TO, "")
        o.log("ota: firmware %s was not confirmed; the bootloader runs %s again" % (o.stage.manifest["v"], o.fw_running))
    elif st == "switched":  # set_boot done, then a soft reset (the bootloader never ran)
        o.state = "reboot"
    else:
        return None
    return st
