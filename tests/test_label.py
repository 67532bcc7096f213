"""`samband label`: the printed label's QR code decodes (zxing-cpp, an independent
reader) to the hub id, board and the very public key the depot holds, and the
fingerprint printed beside it is that key's."""

import hashlib
import re
import subprocess
import sys

import pytest
import zxingcpp
from PIL import Image

from samband.device import label
from samband.device.depot import Depot
from samband.device.provision import files_for

UID = bytes.fromhex("00005a4d0007")


@pytest.fixture
def depot(tmp_path):
    d = Depot(tmp_path / "depot")
    files_for(d, UID)  # provisioning records the hub and its public key
    return d


def cli(*args):
    return subprocess.run([sys.executable, "-m", "samband.cli", *args], capture_output=True, text=True, timeout=60)


def test_payload_round_trip_and_refusals():
    key = bytes(range(32))
    text = label.payload("00005a4d0007", "esp32-devkit", key)
    assert label.parse_payload(text) == {"id": "00005a4d0007", "board": "esp32-devkit", "key": key}
    for bad in ("https://example.org/hub?id=1", "samband:hub?id=1&board=x", "samband:hub?id=1&board=x&key=zz"):
        with pytest.raises(label.LabelError):
            label.parse_payload(bad)
    assert label.fingerprint(key) == " ".join(re.findall("....", hashlib.sha256(key).hexdigest()[:20]))


def test_label_qr_decodes_to_the_depots_key(depot, tmp_path):
    p = cli("label", UID.hex(), "--depot", str(depot.path), "--board", "esp32-devkit", "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    public = bytes.fromhex(depot.hubs()[UID.hex()]["public"])
    png = tmp_path / "out" / f"label-{UID.hex()}.png"
    img = Image.open(png)
    assert img.size == (label._px(62), label._px(29))
    found = zxingcpp.read_barcodes(img)
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    assert label.parse_payload(found[0].text) == {"id": UID.hex(), "board": "esp32-devkit", "key": public}
    assert label.fingerprint(public) in p.stdout
    pdf = (tmp_path / "out" / f"label-{UID.hex()}.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    # the page is the label: 62 x 29 mm in points
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert box and abs(float(box.group(1)) - 62 / 25.4 * 72) < 1 and abs(float(box.group(2)) - 29 / 25.4 * 72) < 1


def test_one_line_errors(depot, tmp_path):
    p = cli("label", "00005a4d0999", "--depot", str(depot.path), "--board", "picow", "--out", str(tmp_path))
    assert p.returncode == 1 and "is not in the depot" in p.stderr and p.stderr.count("\n") == 1
    p = cli("label", UID.hex(), "--depot", str(depot.path), "--out", str(tmp_path))
    assert p.returncode == 1 and "give --board" in p.stderr
    p = cli("label", "--depot", str(depot.path))
    assert p.returncode == 1 and "which hub?" in p.stderr
    depot.revoke(UID)
    p = cli("label", UID.hex(), "--depot", str(depot.path), "--board", "picow", "--out", str(tmp_path))
    assert p.returncode == 1 and "revoked" in p.stderr


def test_label_for_the_hub_on_a_port(tmp_path):
    from conftest import firmware_tree, running

    from samband.vhub import VirtualHub
    d = Depot(tmp_path / "depot")
    files_for(d, bytes.fromhex("00005a4d0001"))  # the virtual hub's default id
    firmware_tree()
    with VirtualHub(tmp_path / "flash") as hub:
        running(hub.port)
        p = cli("label", "--port", hub.port, "--depot", str(d.path), "--out", str(tmp_path / "out"))
        assert p.returncode == 0, p.stderr
    found = zxingcpp.read_barcodes(Image.open(tmp_path / "out" / "label-00005a4d0001.png"))
    assert label.parse_payload(found[0].text)["board"] == "vhub"
