"""`make run` (samband run): broker, receiver, BLE bridge with emulated devices and a virtual hub;
readings travel BLE -> hub (sealed journal) -> MQTT over TLS -> receiver database, and show."""

import subprocess
import sys


def test_run_shows_readings_arriving(tmp_path):
    p = subprocess.run([sys.executable, "-m", "samband.cli", "run", "--seconds", "12", "--root", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "samband: broker on localhost:" in out and "with 7 emulated devices" in out
    last = out.rsplit("hub boot", 1)[1]
    for kind in ("glucose", "cgm", "polar", "bp", "plx", "thermo", "scale"):
        assert f"  {kind} " in last, out[-3000:]
    assert "glucose" in last and "mg/dL" in last and "ECG frame of" in last
    assert "connected received" in last and "problems" not in last
    stored = int(last.split("receiver stored ")[1].split()[0])
    acked = int(last.split(" acked")[0].rsplit(" ", 1)[1])
    assert stored > 50 and acked > 50, last  # readings reached the database and the hub heard it
