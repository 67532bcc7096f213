"""Putting MicroPython on a blank board: esptool (as a library) for the ESP32
family, a UF2 copy onto the boot ROM's USB drive for the Raspberry Pi Pico W.

Both check the image against board.json first (images.check_for_board), so
the only failures left are the board's: not connected, not in its bootloader,
another chip than the board file says. Each becomes one FlashError line that
says what to do. Firmware images cannot be downloaded from here; docs/flashing.md
says where the official ones come from."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samband.device.images import check_for_board
from samband.errors import SambandError

RP2_BOOT_ID = "Board-ID: RPI-RP2"


class FlashError(SambandError):
    pass


def flash(board: dict[str, Any], image: str | Path, port: str | None = None, drive: str | Path | None = None,
          erase: bool = False, baud: int | None = None, progress: Callable[[int, int], None] | None = None,
          connect_attempts: int = 3, mounts: str = "/proc/mounts") -> str:
    """Write the image file to the board; progress(done, total) as it goes.
    Returns a one-line summary of what was written."""
    data = _read(image)
    info = check_for_board(data, board)
    tool = board["flash"]["tool"]
    if tool == "esptool":
        if port is None:
            raise FlashError(f"{board['name']} is flashed over its serial port: give --port (e.g. /dev/ttyUSB0)")
        return _esptool(board, info, data, port, erase, baud or board["flash"].get("baud"), progress,
                        connect_attempts)
    if erase:
        raise FlashError("--erase is for ESP32 boards; a Pico's UF2 bootloader writes only what the file holds")
    return _uf2(board, info, data, drive or find_drive(mounts), progress)


def _read(image: str | Path) -> bytes:
    try:
        return Path(image).read_bytes()
    except FileNotFoundError:
        raise FlashError(f"no such image file: {image}") from None
    except IsADirectoryError:
        raise FlashError(f"{image} is a folder; give the firmware image file (.bin or .uf2)") from None
    except PermissionError:
        raise FlashError(f"cannot read {image}: permission denied") from None


def check_port(port: str) -> None:
    """One-line errors for the usual serial-port mistakes, before esptool tries."""
    if not os.path.exists(port):
        raise FlashError(f"no serial port {port}: is the board plugged in? (`samband discover` lists hubs)")
    if not os.access(port, os.R_OK | os.W_OK):
        raise FlashError(f"permission denied on {port}: add yourself to the dialout group "
                         "(sudo usermod -aG dialout $USER), then log in again")


def _esptool(board: dict[str, Any], info: dict[str, Any], data: bytes, port: str | None, erase: bool,
             baud: int | None, progress: Callable[[int, int], None] | None, attempts: int) -> str:
    check_port(port)
    from esptool import cmds, logger
    from esptool.util import FatalError
    from serial import SerialException

    logger.log.set_logger(_esptool_log(logger.TemplateLogger, progress))
    want = board["mcu"]
    try:
        mode = "default-reset" if _has_modem_lines(port) else "no-reset"
        with cmds.detect_chip(port, connect_mode=mode, connect_attempts=attempts) as esp:
            chip = esp.CHIP_NAME.lower().replace("-", "")
            if chip != want:
                raise FlashError(f"the board on {port} is an {esp.CHIP_NAME}, not the {want.upper()} of "
                                 f"{board['name']}: pick the right --board")
            esp = cmds.run_stub(esp)
            if baud:
                esp.change_baud(int(baud))
            cmds.attach_flash(esp)
            if erase:
                cmds.erase_flash(esp)
            cmds.write_flash(esp, [(info["offset"], data)])
            cmds.reset_chip(esp, "hard-reset")
    except FatalError as e:
        first = str(e).splitlines()[0]
        if "Failed to connect" in first:
            raise FlashError(f"no {want.upper()} bootloader answered on {port}: hold BOOT, tap EN (reset), "
                             "release BOOT, and try again") from None
        raise FlashError(f"esptool: {first}") from None
    except SerialException as e:
        raise FlashError(f"serial port {port}: {e}") from None
    return (f"wrote {len(data)} bytes at 0x{info['offset']:x} to the {want.upper()} on {port}; "
            "it restarts into MicroPython")


def _has_modem_lines(port: str) -> bool:
    """Whether the port has DTR/RTS, which esptool toggles to put the chip in its
    bootloader (USB-UART bridges do; a pty or some adapters do not, and then the
    technician holds BOOT by hand - esptool would warn about it on stderr)."""
    import fcntl
    import termios
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise FlashError(f"cannot open {port}: {e.strerror}") from None
    try:
        fcntl.ioctl(fd, termios.TIOCMGET, b"\0\0\0\0")
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _esptool_log(base: type, progress: Callable[[int, int], None] | None) -> Any:
    """An esptool custom logger (its TemplateLogger interface): progress goes to
    our callback, its chatter nowhere (its errors come back as exceptions)."""

    class Log(base):
        def print(self, *args, **kwargs) -> None:
            pass

        def note(self, message: str, *a: Any, **kw: Any) -> None:
            pass

        def warning(self, message: str, *a: Any, **kw: Any) -> None:
            pass

        def error(self, message: str, *a: Any, **kw: Any) -> None:
            pass

        def stage(self, finish: bool = False) -> None:
            pass

        def set_verbosity(self, verbosity: Any) -> None:
            pass

        def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "", suffix: str = "",
                         bar_length: int = 30) -> None:
            if progress:
                progress(cur_iter, total_iters)

    return Log()


def find_drive(mounts: str = "/proc/mounts") -> Path:
    """The mounted drive of an RP2040 in its boot ROM (it holds INFO_UF2.TXT
    naming RPI-RP2). Exactly one, or a FlashError that says what to do."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError as e:
        raise FlashError(f"cannot list mounted drives ({e}); give --drive") from None
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        where = Path(fields[1].replace("\\040", " "))
        try:
            text = (where / "INFO_UF2.TXT").read_text(errors="replace")
        except OSError:
            continue
        if RP2_BOOT_ID in text:
            found.append(where)
    if not found:
        raise FlashError("no Pico in its bootloader: hold BOOTSEL while plugging it in, let the RPI-RP2 drive "
                         "mount, then try again (or give --drive)")
    if len(found) > 1:
        raise FlashError(f"{len(found)} Picos in their bootloader ({', '.join(map(str, found))}): give --drive")
    return found[0]


def _uf2(board: dict[str, Any], info: dict[str, Any], data: bytes, drive: str | Path | None,
         progress: Callable[[int, int], None] | None, chunk: int = 64 * 512) -> str:
    drive = Path(drive)
    try:
        text = (drive / "INFO_UF2.TXT").read_text(errors="replace")
    except OSError:
        raise FlashError(f"{drive} is not a Pico's bootloader drive (no INFO_UF2.TXT)") from None
    if RP2_BOOT_ID not in text:
        raise FlashError(f"{drive} is a UF2 drive, but not an RP2040's ({text.splitlines()[:2]})")
    target = drive / "samband-firmware.uf2"
    done = 0
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        raise FlashError(f"cannot write to {drive}: {e.strerror}") from None
    try:
        while done < len(data):
            done += os.write(fd, data[done:done + chunk])
            if progress:
                progress(done, len(data))
        os.fsync(fd)
    except OSError as e:
        # The boot ROM restarts the chip as soon as it holds the last block and
        # the drive vanishes under us: only an error before that is a failure.
        if done < len(data):
            raise FlashError(f"writing to {drive} failed after {done} of {len(data)} bytes: {e.strerror}; "
                             "unplug, hold BOOTSEL, plug in and try again") from None
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return (f"copied {info['blocks']} UF2 blocks ({len(data)} bytes) to {drive}; the Pico restarts into "
            "MicroPython when the drive disappears")


def wait_gone(drive: str | Path, timeout: float = 10.0, poll: float = 0.2) -> bool:
    """True once the bootloader drive has unmounted (the board restarted)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not (Path(drive) / "INFO_UF2.TXT").exists():
            return True
        time.sleep(poll)
    return False
