# The ESP32's OTA app partitions, for a whole-firmware update (docs/ota.md,
# "Whole firmware on the ESP32"): thin glue over MicroPython's esp32.Partition
# (ports/esp32/esp32_partition.c). Everything that decides something (what
# goes where, when to switch, confirming, noticing the bootloader's
# roll-back) is in hub/otafw.py, tested on the unix port against a stand-in
# for the esp32 module (tests/fw/esp32stand.py). No `machine` here: the
# ESP32 port hands this the esp32 module's Partition class.

BLOCK = 4096  # esp32_partition.c NATIVE_BLOCK_SIZE_BYTES: the erase page writeblocks() erases


class Slots:
    """The running, booting and idle app partitions of an ESP32 with OTA partitions."""

    def __init__(self, partition):
        self.P = partition

    def running(self):
        """The label of the app partition this boot runs (Partition.RUNNING: esp_ota_get_running_partition)."""
        return self.P(self.P.RUNNING).info()[4]

    def booting(self):
        """The label of the app partition the next reset boots (Partition.BOOT: esp_ota_get_boot_partition)."""
        return self.P(self.P.BOOT).info()[4]

    def head(self, n):
        """The first n bytes of the running app partition (its image header and app descriptor,
        hub/otafw.py image_version): readblocks(0, buf) is esp_partition_read of len(buf) bytes."""
        buf = bytearray(n)
        self.P(self.P.RUNNING).readblocks(0, buf)
        return buf

    def idle(self):
        """(partition, label, bytes) to write an update to: get_next_update() of the running one
        (esp_ota_get_next_update_partition). OSError(ENOENT) on a firmware without OTA partitions."""
        p = self.P(self.P.RUNNING).get_next_update()
        i = p.info()
        return p, i[4], i[3]

    def write(self, part, block, data):
        """One BLOCK-aligned write: writeblocks(block, buf) erases those pages, then writes."""
        part.writeblocks(block, data)

    def switch(self, part):
        """Boot it at the next reset (set_boot: esp_ota_set_boot_partition, which first checks
        the image and raises OSError if it is not a valid app image)."""
        part.set_boot()

    def confirm(self):
        """This boot is good: no roll-back at the next reset (esp_ota_mark_app_valid_cancel_rollback)."""
        self.P.mark_app_valid_cancel_rollback()
