"""The virtual hub: the MicroPython unix port behind a pseudo-terminal that
behaves like a board's USB serial port (supervisor.py, on the host), and the
script that makes the interpreter look like a board that just reset (boot.py,
run inside MicroPython)."""

from samband.vhub.flash import Flash, FlashError
from samband.vhub.supervisor import VirtualHub, deploy, parse_heap

__all__ = ["Flash", "FlashError", "VirtualHub", "deploy", "parse_heap"]
