"""Talking to a hub through its serial port with two primitives, exec and
eval over the raw REPL (mpremote's transport), so that the same code
drives a board on /dev/ttyUSB0 and a virtual hub on /dev/pts/N."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
from typing import Any

from samband.errors import HubError, HubRaised, NoAnswer

READ_TIMEOUT_S = 15
STATUS_EXPR = """\
from hub import app as _a
_h = _a.boot_quiet()
print(_a.json.dumps(_h.status()))
"""


class Hub:
    def __init__(self, port: str, baud: int = 115200, soft_reset: bool = False) -> None:
        self.port = port
        self.baud = baud
        self.soft_reset = soft_reset
        self.t = None

    def __enter__(self) -> Hub:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
        check_port(self.port)
        try:
            # mpremote prints what it read when the raw REPL does not answer (a
            # stray b''): that goes nowhere, the error below says what happened.
            with contextlib.redirect_stdout(io.StringIO()):
                self.t = SerialTransport(self.port, baudrate=self.baud)
                # mpremote reads some answers with no timeout at all; a hub that never
                # answers must end in an error, not hang the technician (or CI) forever.
                self.t.serial.timeout = READ_TIMEOUT_S
                self.t.enter_raw_repl(soft_reset=self.soft_reset)
        except TransportError as e:
            opened = self.t is not None  # the port opened: what failed is the raw REPL's answer
            if opened:
                self.t.close()
                self.t = None
                raise NoAnswer(f"no MicroPython hub answered on {self.port}: is the hub plugged in and "
                               f"powered, and is this its port? (a program holding the port, e.g. "
                               f"mpremote or a terminal, must be closed first)") from None
            raise HubError(f"cannot open {self.port}: {e}") from None
        except OSError as e:
            raise HubError(f"cannot open {self.port}: {e.strerror or e}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.t:
            try:
                self.t.exit_raw_repl()
            finally:
                self.t.close()

    def exec(self, code: str, timeout: float = 10) -> str:
        from mpremote.transport import TransportError
        try:
            out, err = self.t.exec_raw(code, timeout=timeout)
        except TransportError as e:
            raise NoAnswer(f"no answer from the hub on {self.port}: {e}") from None
        if err:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise HubRaised(lines[-1] if lines else "(nothing said)")
        return out.decode("utf-8", "replace")

    def eval(self, expr: str) -> str:
        return self.exec(f"print(repr({expr}))").strip()

    def status(self) -> dict[str, Any]:
        out = self.exec(STATUS_EXPR).strip().splitlines()
        try:
            return json.loads(out[-1])
        except (IndexError, ValueError):
            raise HubError(f"hub sent no status: {out!r}") from None


def check_port(port: str) -> None:
    """Refuse, in words, a port that cannot be a hub's before mpremote hides why
    (it says only "failed to access"): missing, not a character device, or not
    ours to open (the dialout group)."""
    ports = "list the ports with: ls /dev/ttyUSB* /dev/ttyACM*"
    if "://" in port:  # pyserial URLs (socket://, rfc2217://) are checked by pyserial
        return
    try:
        st = os.stat(port)
    except FileNotFoundError:
        raise HubError(f"no serial port {port}: is the hub plugged in? {ports}") from None
    except OSError as e:
        raise HubError(f"cannot use {port}: {e.strerror}") from None
    if not stat.S_ISCHR(st.st_mode):
        raise HubError(f"{port} is not a serial port but a {'folder' if stat.S_ISDIR(st.st_mode) else 'file'}; "
                       f"{ports}")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except PermissionError:
        group = _group(st)
        how = "run with sudo" if group == "root" else (
            f"add yourself to its group (sudo usermod -aG {group} $USER, then log in again) or run with sudo")
        raise HubError(f"no permission to open {port}: {how}") from None
    except OSError as e:
        raise HubError(f"cannot open {port}: {e.strerror}") from None
    os.close(fd)


def _group(st: os.stat_result) -> str:
    try:
        import grp
        return grp.getgrgid(st.st_gid).gr_name
    except (ImportError, KeyError):
        return "dialout"
