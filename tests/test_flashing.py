"""`samband flash`: the image is checked against the board before anything is
written (chip, UF2 family, size, damage), a Pico W's UF2 lands byte-exact on its
bootloader drive, and every failure a technician meets is one line that says
what to do. Images are built here from the formats' own documents (ESP-IDF app
image header, the UF2 specification); the ESP32's write path itself needs a
board (or a ROM-loader simulator, not yet written) and is not claimed here."""

import os
import pty
import struct

import pytest
from test_cli_errors import one_line, run

from samband.device import boards, flashing, images

INFO = "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n"


def esp_image(chip_id=0, size=4096, segments=3):
    head = struct.pack("<BBBBI", 0xE9, segments, 2, 0x20, 0x40080000)
    ext = struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", chip_id, 0, 0, 0xFFFF, b"\0" * 4, 0)
    return (head + ext).ljust(size, b"\xff")


def uf2(family=images.UF2_FAMILIES["rp2040"], n=10, base=images.RP2040_XIP, order=None, flags=0x2000):
    blocks = []
    for no in order if order is not None else range(n):
        payload = bytes([no & 0xFF]) * 256
        head = struct.pack("<8I", images.UF2_MAGIC0, images.UF2_MAGIC1, flags, base + 256 * no, 256, no, n, family)
        blocks.append(head + payload.ljust(476, b"\0") + struct.pack("<I", images.UF2_MAGIC_END))
    return b"".join(blocks)


@pytest.fixture
def esp32():
    return boards.load("esp32-devkit")


@pytest.fixture
def picow():
    return boards.load("picow")


def test_esp_images_are_checked_against_the_board(esp32):
    assert images.check_for_board(esp_image(0), esp32)["chip"] == "esp32"
    with pytest.raises(images.ImageError, match="for an ESP32-S3, but esp32-devkit is an ESP32"):
        images.check_for_board(esp_image(9), esp32)
    with pytest.raises(images.ImageError, match="UF2 file"):
        images.check_for_board(uf2(), esp32)
    with pytest.raises(images.ImageError, match="not an ESP flash image"):
        images.check_for_board(b"\x7fELF" + bytes(100), esp32)
    with pytest.raises(images.ImageError, match="does not fit"):
        images.check_for_board(esp_image(0, size=esp32["flash_size"]), esp32)
    with pytest.raises(images.ImageError, match="unknown chip"):
        images.check_for_board(esp_image(0x7777), esp32)


def test_uf2_files_are_checked_against_the_board(picow):
    assert images.check_for_board(uf2(), picow)["blocks"] == 10
    assert images.check_for_board(uf2(order=[3, 1, 0, 2, 9, 8, 7, 6, 5, 4]), picow)["blocks"] == 10
    cases = [
        (uf2(family=images.UF2_FAMILIES["rp2350-arm-s"]), "for rp2350-arm-s, but picow is an rp2040"),
        (uf2(order=range(9)), "incomplete UF2 file: 9 of 10"),
        (uf2(order=[0, 1, 1, 2, 3, 4, 5, 6, 7, 8]), "damaged UF2 file"),
        (uf2(flags=0), "without a family id"),
        (uf2()[:-1], "not a whole number"),
        (esp_image(0), "not a UF2 file"),
        (uf2(base=0x20000000), "outside picow's flash"),
    ]
    for data, words in cases:
        with pytest.raises(images.ImageError, match=words):
            images.check_for_board(data, picow)


def drive(tmp_path, name="RPI-RP2", info=INFO):
    d = tmp_path / name
    d.mkdir()
    (d / "INFO_UF2.TXT").write_text(info)
    return d


def test_a_pico_w_image_lands_byte_exact_on_its_bootloader_drive(tmp_path, picow):
    image = tmp_path / "RPI_PICO_W.uf2"
    image.write_bytes(uf2(n=300))
    d = drive(tmp_path)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 {d} vfat rw 0 0\nproc /proc proc rw 0 0\n")
    seen = []
    said = flashing.flash(picow, image, progress=lambda done, total: seen.append((done, total)),
                          mounts=str(mounts))
    assert (d / "samband-firmware.uf2").read_bytes() == image.read_bytes()
    assert seen[-1] == (300 * 512, 300 * 512) and len(seen) > 1
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:]))
    assert "300 UF2 blocks" in said


def test_the_bootloader_drive_is_found_once_or_the_error_says_what_to_do(tmp_path):
    mounts = tmp_path / "mounts"
    other = drive(tmp_path, "NOT-A-PICO", "UF2 Bootloader\nBoard-ID: SAMD21\n")
    mounts.write_text(f"/dev/sdc1 {other} vfat rw 0 0\n")
    with pytest.raises(flashing.FlashError, match="hold BOOTSEL"):
        flashing.find_drive(str(mounts))
    a, b = drive(tmp_path, "A"), drive(tmp_path, "B C")
    mounts.write_text(f"/dev/sdb1 {a} vfat rw 0 0\n/dev/sdd1 {str(b).replace(' ', chr(92) + '040')} vfat rw 0 0\n")
    with pytest.raises(flashing.FlashError, match="2 Picos .* give --drive"):
        flashing.find_drive(str(mounts))
    mounts.write_text(f"/dev/sdd1 {str(b).replace(' ', chr(92) + '040')} vfat rw 0 0\n")
    assert flashing.find_drive(str(mounts)) == b


@pytest.fixture
def silent_port():
    """A serial port with nothing behind it: what a board not in its bootloader looks like."""
    master, slave = pty.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_every_flash_failure_is_one_line(tmp_path, silent_port):
    esp = tmp_path / "ESP32_GENERIC.bin"
    esp.write_bytes(esp_image(0))
    s3 = tmp_path / "ESP32_GENERIC_S3.bin"
    s3.write_bytes(esp_image(9))
    pico = tmp_path / "RPI_PICO_W.uf2"
    pico.write_bytes(uf2())
    one_line(run("flash", str(tmp_path / "nothing.bin"), "--port", silent_port), "no such image file")
    one_line(run("flash", str(tmp_path), "--port", silent_port), "is a folder")
    one_line(run("flash", str(esp)), "give --port")
    one_line(run("flash", str(s3), "--port", silent_port), "ESP32-S3", "download the ESP32 build")
    one_line(run("flash", str(pico), "--port", silent_port), "UF2 file")
    one_line(run("flash", str(esp), "--port", "/dev/ttyUSB77"), "no serial port /dev/ttyUSB77", "plugged in")
    one_line(run("flash", str(esp), "--port", silent_port), "no ESP32 bootloader answered", "hold BOOT")
    one_line(run("flash", str(esp), "--board", "picow", "--drive", str(tmp_path)), "not a UF2 file")
    one_line(run("flash", str(pico), "--board", "picow", "--drive", str(tmp_path)), "no INFO_UF2.TXT")
    one_line(run("flash", str(pico), "--board", "picow", "--erase", "--drive", str(tmp_path)), "--erase is for ESP32")
    one_line(run("flash", str(esp), "--board", "nosuch", "--port", silent_port), "no board 'nosuch'")


def test_a_pico_flashed_from_the_command_line(tmp_path):
    pico = tmp_path / "RPI_PICO_W.uf2"
    pico.write_bytes(uf2(n=40))
    d = drive(tmp_path)
    p = run("flash", str(pico), "--board", "picow", "--drive", str(d))
    assert p.returncode == 0, p.stderr
    assert (d / "samband-firmware.uf2").read_bytes() == pico.read_bytes()
    assert "writing 100%" in p.stderr and "40 UF2 blocks" in p.stdout
