# A stand-in for MicroPython's `esp32` module (its Partition class) and for the
# ESP32's bootloader, so that hub/otafw.py's apply / confirm / roll-back logic
# above the board glue (hub/ports/esp32ota.py) runs on the unix port. It behaves
# as MicroPython's ports/esp32/esp32_partition.c and the ESP-IDF calls it makes
# say (function by function below); test data, not firmware.
#
# A Chip holds the app partitions (NOR flash: erased bytes read 0xFF, a write
# can only clear bits), otadata (which partition boots, each one's image state)
# and which partition runs. Chip.reset() is the bootloader with
# CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (bootloader_utility_get_selected_boot_partition):
# a NEW image is booted once as PENDING_VERIFY; one still PENDING_VERIFY at the
# next reset (never confirmed) is marked ABORTED and the previous app booted.

PAGE = 4096  # esp32_partition.c NATIVE_BLOCK_SIZE_BYTES; SPI_FLASH_SEC_SIZE for erase_range
TYPE_APP = 0
TYPE_DATA = 1
ESP_ERR_INVALID_ARG = 0x102
ESP_ERR_INVALID_SIZE = 0x104
ESP_ERR_OTA_VALIDATE_FAILED = 0x1503
ESP_ERR_NOT_FOUND = 0x105
MP_ENOENT = 2
APP_MAGIC = 0xE9  # esp_image_format.h ESP_IMAGE_HEADER_MAGIC, the first check of esp_image_verify
DESC_MAGIC = b"\x32\x54\xcd\xab"  # esp_app_desc.h ESP_APP_DESC_MAGIC_WORD 0xABCD5432, little-endian


def app_image(version, n=80):
    """The first n bytes of an app image as ESP-IDF builds one: the image header's magic, and
    its esp_app_desc_t at offset 32 (after esp_image_header_t, 24 bytes, and the first
    esp_image_segment_header_t, 8): magic_word, secure_version, reserv1[2], version[32]
    (PROJECT_VER), the rest zero here."""
    b = bytearray(n)
    b[0] = APP_MAGIC
    b[32:36] = DESC_MAGIC
    v = version.encode()
    b[48:48 + len(v)] = v
    return b


def _err(code):
    # mphalport.c check_esp_err_: OSError(-code) for the codes used here
    raise OSError(-code)


class Chip:
    """The flash's app partitions and otadata; `rollback` as CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.
    path: kept in files there (one per partition, otadata as text), so that the chip
    outlives the process: the virtual hub's reset (tests/test_ota_fw_e2e.py)."""

    def __init__(self, labels=("ota_0", "ota_1"), size=4 * PAGE, rollback=True, version="1.0.0", path=None):
        self.path = path
        self.labels = list(labels)
        self.flash = {}
        for lb in labels:
            f = self.flash[lb] = bytearray(size)
            for i in range(size):
                f[i] = 0xFF  # erased
        self.boot = labels[0] if labels else None  # otadata's choice (load() fills an empty chip)
        self.states = {lb: "undefined" for lb in labels}  # esp_ota_img_states_t, lower case
        self.running = self.boot
        self.rollback = rollback
        self.boots = 0
        if labels:
            self.flash[labels[0]][:80] = app_image(version)  # the image esptool flashed
            self.states[labels[0]] = "valid"
        self.save()

    def save(self, label=None):
        """Onto the files (a path given): otadata, and one partition's bytes or all of them."""
        if self.path is None:
            return
        for lb in (self.labels if label is None else [label] if label else []):
            with open(self.path + "/" + lb, "wb") as f:
                f.write(self.flash[lb])
        with open(self.path + "/otadata", "w") as f:
            f.write(" ".join([self.boot, self.running, str(self.boots)]
                             + ["%s=%s" % (lb, self.states[lb]) for lb in self.labels]))

    @classmethod
    def load(cls, path):
        """The chip kept under path, or None if there is none yet."""
        try:
            with open(path + "/otadata") as f:
                words = f.read().split()
        except OSError:
            return None
        c = cls(labels=(), path=None)  # then filled from the files
        c.path = path
        c.boot, c.running, c.boots = words[0], words[1], int(words[2])
        c.states = {}
        c.labels = []
        for w in words[3:]:
            lb, st = w.split("=")
            c.labels.append(lb)
            c.states[lb] = st
        c.flash = {}
        for lb in c.labels:
            with open(path + "/" + lb, "rb") as f:
                c.flash[lb] = bytearray(f.read())
        c.rollback = True
        return c

    def _app(self, label):
        return self.flash[label][0] == APP_MAGIC

    def reset(self):
        """The bootloader at a reset or power-on."""
        self.boots += 1
        b = self.boot
        if self.rollback and self.states[b] == "pending":
            # booted once and never confirmed: aborted, back to the previous valid app
            self.states[b] = "aborted"
            b = [lb for lb in self.labels if lb != b and self.states[lb] in ("valid", "undefined") and self._app(lb)][0]
            self.boot = b
        elif self.rollback and self.states[b] == "new":
            self.states[b] = "pending"
        if not self._app(b):  # no valid image there: the bootloader tries the others
            b = [lb for lb in self.labels if self._app(lb)][0]
        self.running = b
        self.save("")  # otadata only


class Partition:
    """esp32.Partition over the current CHIP (set by the test)."""

    BOOT = 0      # esp32_partition.c ESP32_PARTITION_BOOT
    RUNNING = 1   # ESP32_PARTITION_RUNNING
    TYPE_APP = TYPE_APP
    TYPE_DATA = TYPE_DATA
    chip = None

    def __init__(self, id, block_size=PAGE):
        # esp32_partition_make_new: BOOT -> esp_ota_get_boot_partition, RUNNING ->
        # esp_ota_get_running_partition, a string -> esp_partition_find_first by label;
        # esp32_partition_new raises OSError(ENOENT) for no partition; another int is a ValueError
        c = Partition.chip
        if isinstance(id, int):
            if id == Partition.BOOT:
                self.label = c.boot
            elif id == Partition.RUNNING:
                self.label = c.running
            else:
                raise ValueError()
        else:
            if id not in c.flash:
                raise OSError(MP_ENOENT)
            self.label = id
        self.block_size = block_size

    def info(self):
        # esp32_partition_info: (type, subtype, addr, size, label, encrypted); ota_N subtype 0x10 + N
        c = Partition.chip
        i = c.labels.index(self.label)
        return (TYPE_APP, 0x10 + i, 0x10000 + i * len(c.flash[self.label]), len(c.flash[self.label]), self.label,
                False)

    def readblocks(self, block, buf, offset=0):
        # esp32_partition_readblocks -> esp_partition_read(offset = block * block_size (+ offset))
        o = block * self.block_size + offset
        f = Partition.chip.flash[self.label]
        if o + len(buf) > len(f):
            _err(ESP_ERR_INVALID_SIZE)
        buf[:] = f[o:o + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        # esp32_partition_writeblocks: with 2 arguments (and block_size >= 4096) erase the range
        # (esp_partition_erase_range: offset and length whole 4 KB sectors, else
        # ESP_ERR_INVALID_ARG; past the end ESP_ERR_INVALID_SIZE), then esp_partition_write;
        # with an offset (the extended protocol) write only, erasing was the caller's job
        f = Partition.chip.flash[self.label]
        o = block * self.block_size
        if offset is None:
            if o % PAGE or len(buf) % PAGE:
                _err(ESP_ERR_INVALID_ARG)
            if o + len(buf) > len(f):
                _err(ESP_ERR_INVALID_SIZE)
            for i in range(o, o + len(buf)):
                f[i] = 0xFF
        else:
            o += offset
        if o + len(buf) > len(f):
            _err(ESP_ERR_INVALID_SIZE)
        for i in range(len(buf)):
            f[o + i] &= buf[i]  # NOR flash: a write clears bits, never sets them
        Partition.chip.save(self.label)

    def ioctl(self, cmd, arg):
        # esp32_partition_ioctl: 4 block count, 5 block size, 6 erase one 4 KB block; 1-3 return 0
        f = Partition.chip.flash[self.label]
        if cmd in (1, 2, 3):
            return 0
        if cmd == 4:
            return len(f) // self.block_size
        if cmd == 5:
            return self.block_size
        if cmd == 6:
            for i in range(arg * PAGE, (arg + 1) * PAGE):
                f[i] = 0xFF
            Partition.chip.save(self.label)
            return 0
        return None

    def set_boot(self):
        # esp32_partition_set_boot -> check_esp_err(esp_ota_set_boot_partition): the image is
        # verified first (esp_image_verify: ESP_ERR_OTA_VALIDATE_FAILED), then otadata names it,
        # its state ESP_OTA_IMG_NEW with rollback enabled
        c = Partition.chip
        if not c._app(self.label):
            _err(ESP_ERR_OTA_VALIDATE_FAILED)
        c.boot = self.label
        c.states[self.label] = "new" if c.rollback else "undefined"
        c.save(self.label)

    def get_next_update(self):
        # esp32_partition_get_next_update -> esp_ota_get_next_update_partition(this one): the next
        # OTA app partition after it, wrapping; none (a firmware without OTA partitions) is
        # OSError(ENOENT) from esp32_partition_new
        c = Partition.chip
        if len(c.labels) < 2:
            raise OSError(MP_ENOENT)
        i = c.labels.index(self.label)
        return Partition(c.labels[(i + 1) % len(c.labels)])

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        # esp32_partition_mark_app_valid_cancel_rollback -> esp_ota_mark_app_valid_cancel_rollback:
        # the running image PENDING_VERIFY -> VALID; ESP_OK otherwise too. docs/library/esp32.rst:
        # OSError(-261) on a firmware built without the rollback feature
        c = cls.chip
        if not c.rollback:
            _err(ESP_ERR_NOT_FOUND)
        if c.states[c.running] == "pending":
            c.states[c.running] = "valid"
            c.save(c.running)
