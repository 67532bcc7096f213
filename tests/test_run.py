"""`make run` (samband run): the virtual rig boots and readings from the emulated devices show, opened."""

import subprocess
import sys


def test_run_shows_readings_arriving(tmp_path):
    p = subprocess.run([sys.executable, "-m", "samband.cli", "run", "--seconds", "10", "--root", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "samband: virtual hub on /dev/pts/" in out and "with 7 emulated devices" in out
    last = out.rsplit("hub boot", 1)[1]
    for kind in ("glucose", "cgm", "polar", "bp", "plx", "thermo", "scale"):
        assert f"  {kind} " in last, out[-3000:]
    assert "glucose" in last and "mg/dL" in last and "ECG frame of" in last
    assert "connected stored" in last and "problems" not in last
