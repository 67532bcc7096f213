"""`samband decode <uuid> <hex>`: JSON of fields and readings, one-line errors."""

import json
import subprocess
import sys

import pytest

from samband import cli
from samband.device.decode import DecodeError, decode, parse_hex

GLUCOSE = "1B0100E307021B0B0A1EFBFF1E00120501"


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_glucose_measurement_json(capsys):
    rc, out, err = run(capsys, "decode", "2a18", GLUCOSE)
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert doc["characteristic"] == "Glucose Measurement" and doc["uuid"] == "0x2A18"
    assert doc["fields"]["time"] == [2019, 2, 27, 11, 10, 30] and doc["fields"]["conc"] == [30, 0]
    (r,) = doc["readings"]
    assert r == {"mdc": 160188, "val": 30, "exp": 5, "unit": "mg/dL", "rec": 1, "dts": 1551265530,
                 "flags": 261, "ctx": {"loc": 1, "toff": -5}}
    assert doc["values"] == ["3000000 mg/dL"]


def test_uuid_and_hex_forms(capsys):
    outs = set()
    long_uuid = "00002a18-0000-1000-8000-00805f9b34fb"
    for uuid, payload in (("0x2A18", [GLUCOSE]), (long_uuid, ["1b 01 00 e3 07 02 1b", "0b 0a 1e fb ff 1e 00 12 05 01"]),
                          ("2A18", ["1b:01:00:e3:07:02:1b:0b:0a:1e:fb:ff:1e:00:12:05:01"]),
                          ("2a18", ["0x" + GLUCOSE.lower()])):
        rc, out, err = run(capsys, "decode", "--compact", uuid, *payload)
        assert rc == 0, err
        outs.add(out)
    assert len(outs) == 1


def test_special_values_are_text(capsys):
    rc, out, _ = run(capsys, "decode", "2a35", "00 7800 0008 FF07")
    doc = json.loads(out)
    assert doc["fields"]["dia"] == "NRes" and doc["fields"]["map"] == "NaN"
    assert doc["readings"][0]["val"] == [120, "NaN", "NaN"]
    assert doc["readings"][0]["ctx"] == {"special": [None, "NRes", None]}
    assert doc["values"] == ["120/NaN/NaN mm[Hg]"]


def test_polar_ecg_and_options(capsys):
    rc, out, _ = run(capsys, "decode", "fb005c82-02e7-f387-1cad-8acd2d8df0c8", "00 0094357700000000 00 0280FF 028000",
                     "--rate", "200")
    (r,) = json.loads(out)["readings"]
    assert r["val"] == [-32766, 32770] and r["unit"] == "uV" and r["period"] == 5000
    cgm = "0F E3 D2E4 0500 02 14 FF 02F0 E5F3 8E3F"
    rc, out, _ = run(capsys, "decode", "2aa7", cgm, "--crc", "--start", "1700000000", "--tzo", "60")
    g = json.loads(out)["readings"][0]
    assert g["dts"] == 1700000300 and g["tzo"] == 60 and g["rec"] == 5
    rc, out, err = run(capsys, "decode", "2aa7", cgm, "--no-crc")
    assert rc == 1 and "E2E-CRC" in err


def test_non_measurement_shows_fields_only(capsys):
    rc, out, _ = run(capsys, "decode", "2a52", "05 00 02 01")
    doc = json.loads(out)
    assert doc["fields"] == {"op": 5, "operator": 0, "count": 258} and doc["readings"] == []


@pytest.mark.parametrize("argv, words", [
    (["decode", "2a35", "00 01 02"], ["Blood Pressure Measurement (0x2A35)", "byte 3"]),
    (["decode", "2a99", "00"], ["0x2A99", "not a characteristic"]),
    (["decode", "nonsense", "00"], ["not a UUID"]),
    (["decode", "2a18", "zz"], ["not hex"]),
    (["decode", "2a18", "1"], ["not hex"]),
    (["decode", "2a19", "65"], ["Battery Level (0x2A19)", "out of range"]),
])
def test_errors_are_one_line(capsys, argv, words):
    rc, out, err = run(capsys, *argv)
    assert rc == 1 and out == ""
    assert err.startswith("samband: ") and err.count("\n") == 1
    for w in words:
        assert w in err


def test_library_functions():
    assert parse_hex(" 0x01 02:03-04 ") == b"\x01\x02\x03\x04"
    with pytest.raises(DecodeError):
        parse_hex("0g")
    assert decode(0x2A19, b"\x5a")["readings"] == [{"mdc": 67996, "val": 90, "unit": "%"}]
    assert isinstance(DecodeError("x"), ValueError)


def test_console_script():
    p = subprocess.run([sys.executable, "-m", "samband.cli", "decode", "2a19", "5a", "--compact"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["values"] == ["90 %"]
