"""firmware/main.py when the application cannot start: a firmware trial (the ESP32 runs
the OTA partition that /fw/ota/fw-to names, hub/otafw.py) resets the board, so that the
bootloader rolls it back at once; the same failure outside a trial stops at the REPL
(the exception goes on), as before. Run on CPython with the esp32 stand-in
(tests/fw/esp32stand.py) as the esp32 module and the flash's /fw in a folder."""

import builtins
import sys
import types
from pathlib import Path

import pytest
from esp32stand import Chip, Partition

import hub

MAIN = Path(__file__).parent.parent / "firmware" / "main.py"


def run_main(tmp_path, monkeypatch, fw_to, running):
    (tmp_path / "ota").mkdir(exist_ok=True)
    if fw_to is not None:
        (tmp_path / "ota" / "fw-to").write_text(fw_to)
    chip = Chip()
    chip.running = running
    monkeypatch.setattr(Partition, "chip", chip)
    monkeypatch.setitem(sys.modules, "esp32", types.SimpleNamespace(Partition=Partition))

    def broken():
        raise ImportError("a firmware whose application cannot start")

    monkeypatch.setattr(hub, "app", types.SimpleNamespace(run=broken), raising=False)
    monkeypatch.setattr(sys, "print_exception", lambda e: None, raising=False)  # MicroPython's
    real_open = builtins.open

    def flash_open(path, *a, **kw):
        if isinstance(path, str) and path.startswith("/fw/"):
            path = str(tmp_path / path[4:])
        return real_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", flash_open)
    exec(compile(MAIN.read_text(), str(MAIN), "exec"), {"__name__": "__main__"})


def test_a_firmware_trial_that_cannot_start_resets(tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as e:  # no machine module here: the unix port's hard reset
        run_main(tmp_path, monkeypatch, "ota_1", "ota_1")
    assert e.value.code == 75


def test_outside_a_firmware_trial_the_failure_stops_at_the_repl(tmp_path, monkeypatch):
    for fw_to in (None, "", "ota_1"):  # no switch; confirmed (marks cleared); switched, not booted yet
        with pytest.raises(ImportError, match="cannot start"):
            run_main(tmp_path, monkeypatch, fw_to, "ota_0")
