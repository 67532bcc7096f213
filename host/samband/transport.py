"""Talking to a hub through its serial port with two primitives, exec and
eval over the raw REPL (mpremote's transport), so that the same code
drives a board on /dev/ttyUSB0 and a virtual hub on /dev/pts/N."""

import json

from samband.errors import HubError

READ_TIMEOUT_S = 15
STATUS_EXPR = """\
from hub import app as _a
_h = _a.boot_quiet()
print(_a.json.dumps(_h.status()))
"""


class Hub:
    def __init__(self, port, baud=115200, soft_reset=False):
        self.port = port
        self.baud = baud
        self.soft_reset = soft_reset
        self.t = None

    def __enter__(self):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
        try:
            self.t = SerialTransport(self.port, baudrate=self.baud)
            # mpremote reads some answers with no timeout at all; a hub that never
            # answers must end in an error, not hang the technician (or CI) forever.
            self.t.serial.timeout = READ_TIMEOUT_S
            self.t.enter_raw_repl(soft_reset=self.soft_reset)
        except (TransportError, OSError) as e:
            raise HubError(f"cannot reach a hub on {self.port}: {e}") from None
        return self

    def __exit__(self, *exc):
        if self.t:
            try:
                self.t.exit_raw_repl()
            finally:
                self.t.close()

    def exec(self, code, timeout=10):
        from mpremote.transport import TransportError
        try:
            out, err = self.t.exec_raw(code, timeout=timeout)
        except TransportError as e:
            raise HubError(f"no answer from the hub on {self.port}: {e}") from None
        if err:
            raise HubError("hub raised: " + err.decode("utf-8", "replace").strip().splitlines()[-1])
        return out.decode("utf-8", "replace")

    def eval(self, expr):
        return self.exec(f"print(repr({expr}))").strip()

    def status(self):
        out = self.exec(STATUS_EXPR).strip().splitlines()
        try:
            return json.loads(out[-1])
        except (IndexError, ValueError):
            raise HubError(f"hub sent no status: {out!r}") from None
