# The ESP32's OTA app partitions for tests/data/uplink_main.py (test data, not
# firmware; written to the flash only by tests/test_ota_fw_e2e.py, so that
# main.py's bytecode does not grow for the other rigs' hubs): the esp32
# stand-in (/esp32stand.py, a copy of tests/fw/esp32stand.py) kept in files
# under /esp32, its bootloader run at every boot of the virtual hub, as a
# board's runs at every reset.
import os
import sys

import esp32stand

from hub.ports.esp32ota import Slots


def boot(read):
    """What hub.ports.esp32 Port.firmware_slots() gives, after the bootloader chose the image
    (read(path): a file's text, "" for none; the test main's).
    An image whose app descriptor names the project "crash" stands for a firmware that
    cannot start: in its trial it resets, as firmware/main.py resets a firmware trial that
    fails (the bootloader then rolls it back); otherwise it stops, as a board would at its REPL."""
    try:
        os.mkdir("/esp32")
    except OSError:
        pass
    chip = esp32stand.Chip.load("/esp32") or esp32stand.Chip(version="1.0.0", path="/esp32")
    chip.reset()
    esp32stand.Partition.chip = chip
    if bytes(chip.flash[chip.running][80:85]) == b"crash":
        print("uplink_esp32: the firmware in %s cannot start" % chip.running)
        if read("/fw/ota/fw-to") == chip.running:
            sys.exit(75)  # the virtual hub's supervisor: a hard reset
        raise RuntimeError("firmware in %s cannot start" % chip.running)
    return Slots(esp32stand.Partition)
