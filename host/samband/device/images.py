"""What a firmware image file is, read from its own headers before anything
touches a board: an Espressif flash image (ESP32 family) or a UF2 file
(RP2040 boot ROM). Pure functions, bytes in, facts out.

Why check at all: the boot ROMs accept whatever they are sent. A MicroPython
build for an ESP32-S3 written to an ESP32, or a Pico 2 UF2 copied onto a Pico W,
leaves a board that does not boot and a technician who does not know why.

Formats, from their owners' documents:
- ESP-IDF "App Image Format": an 8-byte header (magic 0xE9, segment count,
  SPI mode, SPI speed/size, entry point) and a 16-byte extended header whose
  bytes 4-5 (offset 12 of the file) are the chip id, little-endian. Chip ids
  come from esptool's own target table (IMAGE_CHIP_ID), not from a copy here.
- Microsoft's UF2 specification: 512-byte blocks, two start magics, flags,
  target address, payload size, block number, block count, family id (when
  flag 0x2000 is set), 476 data bytes, an end magic.
"""

from __future__ import annotations

import struct
from typing import Any

from samband.errors import SambandError

ESP_MAGIC = 0xE9

UF2_BLOCK = 512
UF2_MAGIC0 = 0x0A324655
UF2_MAGIC1 = 0x9E5D5157
UF2_MAGIC_END = 0x0AB16F30
UF2_FLAG_NOT_MAIN_FLASH = 0x00000001
UF2_FLAG_FAMILY = 0x00002000

# Family ids from the UF2 specification's families list; the boot ROM of each
# chip ignores blocks of another family.
UF2_FAMILIES = {
    "rp2040": 0xE48BFF56,
    "rp2350-arm-s": 0xE48BFF59,
    "rp2350-riscv": 0xE48BFF5A,
    "absolute": 0xE48BFF57,
}
# Where the RP2040 maps its flash (execute in place) - every block must land there.
RP2040_XIP = 0x10000000


class ImageError(SambandError, ValueError):
    """The file is not a firmware image for this board; the message says why."""


def esp_chip_ids() -> dict[int, str]:
    """esptool's table: image chip id -> chip name, e.g. 0 -> 'esp32'."""
    from esptool.targets import CHIP_DEFS
    return {c.IMAGE_CHIP_ID: name for name, c in CHIP_DEFS.items()
            if getattr(c, "IMAGE_CHIP_ID", None) is not None}


def esp_image(data: bytes) -> dict[str, Any]:
    """Facts of an Espressif flash image: {'chip', 'segments', 'size'}.
    Raises ImageError if the bytes are not one."""
    if len(data) < 24:
        raise ImageError(f"too short for an ESP flash image ({len(data)} bytes)")
    if data[0] != ESP_MAGIC:
        if data[:4] == struct.pack("<I", UF2_MAGIC0):
            raise ImageError("this is a UF2 file (for a Raspberry Pi Pico), not an ESP32 flash image")
        raise ImageError(f"not an ESP flash image (first byte 0x{data[0]:02x}, want 0x{ESP_MAGIC:02x})")
    segments = data[1]
    if not 1 <= segments <= 16:
        raise ImageError(f"not an ESP flash image ({segments} segments in its header)")
    chip_id = struct.unpack_from("<H", data, 12)[0]
    chip = esp_chip_ids().get(chip_id)
    if chip is None:
        raise ImageError(f"an ESP flash image for an unknown chip (id {chip_id})")
    return {"chip": chip, "segments": segments, "size": len(data)}


def uf2_image(data: bytes) -> dict[str, Any]:
    """Facts of a UF2 file: {'family', 'family_id', 'blocks', 'start', 'end'}
    (the flash address range it writes). Raises ImageError if it is not a
    whole, consistent UF2 file."""
    if not data or len(data) % UF2_BLOCK:
        raise ImageError(f"not a UF2 file: {len(data)} bytes is not a whole number of 512-byte blocks")
    names = {v: k for k, v in UF2_FAMILIES.items()}
    family = None
    count = None
    seen = set()
    start, end = None, 0
    for i in range(0, len(data), UF2_BLOCK):
        m0, m1, flags, addr, size, no, total, fam = struct.unpack_from("<8I", data, i)
        (m_end,) = struct.unpack_from("<I", data, i + UF2_BLOCK - 4)
        if (m0, m1, m_end) != (UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END):
            raise ImageError(f"not a UF2 file: block {i // UF2_BLOCK} lacks the UF2 magic numbers")
        if flags & UF2_FLAG_NOT_MAIN_FLASH:
            continue
        if not flags & UF2_FLAG_FAMILY:
            raise ImageError("a UF2 file without a family id: cannot tell which chip it is for")
        if family is None:
            family, count = fam, total
        elif fam != family:
            raise ImageError("a UF2 file that mixes chip families")
        if total != count or no >= total or no in seen:
            raise ImageError(f"a damaged UF2 file: block {no} of {total} (expected {count} blocks, each once)")
        if size > 476:
            raise ImageError(f"a damaged UF2 file: block {no} carries {size} bytes (at most 476)")
        seen.add(no)
        start = addr if start is None else min(start, addr)
        end = max(end, addr + size)
    if family is None:
        raise ImageError("a UF2 file with nothing for the main flash")
    if len(seen) != count:
        raise ImageError(f"an incomplete UF2 file: {len(seen)} of {count} blocks")
    return {"family": names.get(family, f"0x{family:08x}"), "family_id": family, "blocks": count,
            "start": start, "end": end}


def check_for_board(data: bytes, board: dict[str, Any]) -> dict[str, Any]:
    """The image's facts if it suits this board (board.json dict), else ImageError
    naming what the file is for. The one place that knows which format a board takes."""
    tool = board.get("flash", {}).get("tool")
    if tool == "esptool":
        info = esp_image(data)
        want = board["mcu"]
        if info["chip"] != want:
            raise ImageError(f"this image is for an {_chip(info['chip'])}, but {board['name']} is an "
                             f"{_chip(want)}; download the {_chip(want)} build")
        offset = int(board["flash"]["offset"], 0)
        if offset + len(data) > board["flash_size"]:
            raise ImageError(f"the image ({len(data)} bytes at 0x{offset:x}) does not fit {board['name']}'s "
                             f"{board['flash_size'] // 1048576} MB flash")
        info["offset"] = offset
        return info
    if tool == "uf2":
        info = uf2_image(data)
        want = board["flash"]["family"]
        if info["family"] != want:
            raise ImageError(f"this UF2 file is for {info['family']}, but {board['name']} is an {want}; "
                             f"download the {board['name']} build")
        if want == "rp2040" and not (RP2040_XIP <= info["start"] and info["end"] <= RP2040_XIP + board["flash_size"]):
            raise ImageError(f"this UF2 file writes 0x{info['start']:x}..0x{info['end']:x}, outside "
                             f"{board['name']}'s flash")
        return info
    raise ImageError(f"board {board['name']} is not flashed by samband (flash tool {tool!r})")


def _chip(name: str) -> str:
    return name.upper().replace("ESP32", "ESP32-").replace("--", "-").rstrip("-")
