"""`make run` (samband run): a virtual hub boots and its status shows."""

import subprocess
import sys


def test_run_shows_a_booted_virtual_hub(tmp_path):
    p = subprocess.run([sys.executable, "-m", "samband.cli", "run", "--seconds", "4", "--flash", str(tmp_path / "f")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "virtual hub booting on /dev/pts/" in p.stdout
    assert "hub | samband hub" in p.stdout and "boot 1, reset: power-on" in p.stdout
    status = [l for l in p.stdout.splitlines() if "| heap " in l]
    assert status and "vhub uid 00005a4d0001 | boot 1 (power-on)" in status[0], p.stdout
