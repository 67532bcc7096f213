"""samband deploy on the virtual hub: how long a whole tree, nothing and one module
take over the raw REPL, and how many bytes cross the cable. The pty does not
limit the rate as a board's 115200-baud UART does; the bytes figure is the one
that carries over (at 115200 baud about 11.5 KB/s, plus the raw REPL's repr)."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import figure, firmware_tree

from samband.device import console, deploy
from samband.device.transport import Hub
from samband.paths import FIRMWARE, tool
from samband.vhub import VirtualHub


def _running(port):
    end = time.monotonic() + 30
    with console.open_port(port) as ser:
        while time.monotonic() < end:
            if console.status(ser, timeout=1.0):
                return
    raise RuntimeError("the virtual hub did not answer ?status")


def main():
    tree = firmware_tree()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = tmp / "one"
        shutil.copytree(tree, one)
        src = tmp / "init.py"
        src.write_text((FIRMWARE / "hub" / "__init__.py").read_text().replace('VERSION = "', 'VERSION = "b-', 1))
        subprocess.run([tool("mpy-cross"), "-march=x64", "-s", "hub/__init__.py", "-o",
                        str(one / "hub" / "__init__.mpy"), str(src)], check=True)
        with VirtualHub(tmp / "flash") as hub:
            _running(hub.port)
            with Hub(hub.port) as h:  # bare MicroPython: no firmware on the flash
                h.exec(deploy.HUB_HELPERS)
                h.exec("for p in ('/boot.py', '/main.py', '/board.json'):\n    os.remove(p)\n_sd_rm('/hub')")
            for what, t in (("whole tree", tree), ("nothing changed", tree), ("one module", one)):
                t0 = time.monotonic()
                s = deploy.deploy(hub.port, t)
                figure(f"deploy {what}: time (restart and ?status included)", time.monotonic() - t0, "s")
                figure(f"deploy {what}: files sent", s["sent"], f"of {s['files']}")
                figure(f"deploy {what}: bytes sent", s["bytes"], "B")
                figure(f"deploy {what}: file-data commands on the wire", s["wire"], "B")
