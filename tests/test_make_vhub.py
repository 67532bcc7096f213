"""`make vhub` runs the whole provisioned firmware: the command in the Makefile's
vhub recipe, run as it is (flash, link and depot moved into a temporary folder),
boots a hub that has keys, a journal and the heap for them - not the hub that
only says "not provisioned" (issue 13, item 10)."""

import shlex
import subprocess
import sys
import time

from conftest import firmware_tree, running

from samband.device.depot import Depot
from samband.paths import REPO


def vhub_recipe():
    """The arguments `make vhub` gives `samband`, read from the Makefile."""
    lines = (REPO / "Makefile").read_text().splitlines()
    i = lines.index(next(x for x in lines if x.startswith("vhub:")))
    cmd = shlex.split(lines[i + 1].strip())
    assert cmd[0] == "$(BIN)/samband", cmd
    return cmd[1:]


def test_make_vhub_boots_the_provisioned_firmware(tmp_path):
    firmware_tree()
    args = vhub_recipe() + ["--flash", str(tmp_path / "flash"), "--link", str(tmp_path / "tty"),
                            "--depot", str(tmp_path / "depot"), "--seconds", "120"]
    p = subprocess.Popen([sys.executable, "-m", "samband.cli", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 60
        while not (tmp_path / "tty").exists():
            assert p.poll() is None, p.stdout.read()
            assert time.monotonic() < end, "no virtual hub port"
            time.sleep(0.05)
        s = running(str(tmp_path / "tty"), timeout=60)
        assert not [x for x in s.get("problems", []) if "not provisioned" in x], s
        assert not [x for x in s.get("problems", []) if "MemoryError" in x or "heap" in x], s
        assert s["journal"] is not None and s["uid"] == "00005a4d0001"
        # the hub is in the depot: its readings can be opened
        assert "00005a4d0001" in Depot(tmp_path / "depot", create=False).hubs()
    finally:
        p.terminate()
        out = p.communicate(timeout=30)[0]
    assert "provisioned virtual hub 00005a4d0001" in out, out
