"""Signed releases on the host: `samband release` builds and signs with the
depot's release key (made once, 0600, never printed); the hub's own checks
(hub.release, run here on CPython and in tests/fw/test_release.py on the
unix port) refuse each bad release with its own code; every CLI failure is
one line. The fixtures in tests/data/release/ (signed with a test key, for
the firmware tests, which cannot sign) are what samband.device.release
builds today."""

import io
import os
import stat
from pathlib import Path

import golden_kit
import nacl.bindings as nb
import pytest
from test_cli_errors import one_line, run

from hub import release as fmt
from samband.device import release
from samband.device.depot import Depot

FIXTURES = Path(__file__).parent / "data" / "release"
TEST_SEED = bytes(range(100, 132))  # the fixtures' release key: a test key, in the open on purpose
OTHER_SEED = bytes(range(200, 232))
WHEN = 1764633600  # 2025-12-02T00:00:00Z
IMAGE = bytes((i * 31 + 7) % 251 for i in range(3000))


def fixtures():
    """{file name: bytes} of tests/data/release/."""
    good = release.manifest("vhub", "app", "1.2.0", "0.1.0", IMAGE, WHEN)
    bad = fmt.cbor.dumps({k: v for k, v in fmt.cbor.loads(good).items() if k != "size"})
    return {
        "release.pub": nb.crypto_sign_seed_keypair(TEST_SEED)[0],
        "good.sbr": release.assemble(good, IMAGE, TEST_SEED),
        "other-key.sbr": release.assemble(good, IMAGE, OTHER_SEED),
        "bad-manifest.sbr": release.assemble(bad, IMAGE, TEST_SEED),
    }


def test_fixtures_are_what_the_host_builds():
    # regenerate with: python -c "import test_release_cli as t; t.write_fixtures()" (from tests/)
    golden_kit.check(FIXTURES, fixtures())


def write_fixtures():
    golden_kit.write(FIXTURES, fixtures())


def check(data, board="vhub", running="0.1.0", kind=None, seed=TEST_SEED):
    public = nb.crypto_sign_seed_keypair(seed)[0]
    return fmt.verify_stream(io.BytesIO(data), public, board, running, kind=kind)


def code_of(data, **kw):
    with pytest.raises(fmt.ReleaseError) as e:
        check(data, **kw)
    return e.value.code


def test_good_release_is_taken():
    m = check(fixtures()["good.sbr"])
    assert (m["v"], m["board"], m["kind"], m["size"], m["time"]) == ("1.2.0", "vhub", "app", 3000, WHEN)
    assert m["version"] == (1, 2, 0) and m["min_version"] == (0, 1, 0)


def test_each_refusal_has_its_code():
    f = fixtures()
    good = f["good.sbr"]
    head = fmt.HEAD + len(fmt.split_header(good)[0]) + fmt.SIG
    assert code_of(f["other-key.sbr"]) == "signature"
    assert code_of(good, seed=OTHER_SEED) == "signature"
    for at in (fmt.HEAD + 3, head - 1):  # a manifest byte, a signature byte
        bad = bytearray(good)
        bad[at] ^= 0x20
        assert code_of(bytes(bad)) == "signature"
    assert code_of(f["bad-manifest.sbr"]) == "manifest"
    assert code_of(good, board="esp32-devkit") == "board"
    assert code_of(good, kind="firmware") == "kind"
    assert code_of(good, running="1.3.0") == "downgrade"
    assert code_of(good, running="1.2.0") == "same"
    assert code_of(good, running="0.0.9") == "too-old"
    assert code_of(good, running="1.x") == "version"
    assert code_of(good[:-1]) == "truncated"
    assert code_of(good[:head - 5]) == "truncated"
    assert code_of(good[:3]) == "truncated"
    assert code_of(good + b"\x00") == "too-long"
    bad = bytearray(good)
    bad[head + 1500] ^= 1
    assert code_of(bytes(bad)) == "hash"
    assert code_of(b"SbR\x02" + good[4:]) == "format"
    assert code_of(good[:4] + b"\x00\x00" + good[6:]) == "format"
    assert code_of(good[:4] + b"\xff\xff" + good[6:]) == "format"


def test_versions():
    assert fmt.parse_version("1") == (1, 0, 0) and fmt.parse_version("65535.0.7") == (65535, 0, 7)
    for bad in ("", "1.", ".1", "1.2.3.4", "01", "1.-2", "1 .2", "65536", "v1", "1.2a"):
        with pytest.raises(fmt.ReleaseError):
            fmt.parse_version(bad)


def test_samband_release_signs_with_the_depot_key(tmp_path):
    depot = tmp_path / "depot"
    out = tmp_path / "r.sbr"
    p = run("release", "--board", "vhub", "--version", "1.0.0", "--min-version", "0.1.0", "--out", str(out),
            "--depot", str(depot))
    assert p.returncode == 0, p.stderr
    key = depot / "release.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    seed = key.read_bytes()
    assert seed.hex() not in p.stdout + p.stderr
    public = Depot(depot).release_public()
    assert public.hex() in p.stdout
    data = out.read_bytes()
    m = fmt.verify_stream(io.BytesIO(data), public, "vhub", "0.1.0")
    assert m["kind"] == "app" and m["v"] == "1.0.0"
    from samband.device import build
    assert data[-m["size"]:] == build.romfs_path("vhub").read_bytes()  # the app image is the ROMFS build
    # a second release reuses the key
    p = run("release", "--board", "vhub", "--version", "1.0.1", "--out", str(tmp_path / "r2.sbr"),
            "--depot", str(depot))
    assert p.returncode == 0 and key.read_bytes() == seed
    p = run("release-check", str(out), "--board", "vhub", "--running", "0.1.0", "--depot", str(depot))
    assert p.returncode == 0 and "takes it" in p.stdout, p.stderr
    one_line(run("release-check", str(out), "--board", "vhub", "--running", "1.0.0", "--depot", str(depot)),
             "refuses it (same)")
    one_line(run("release-check", str(out), "--board", "picow", "--running", "0.1.0", "--depot", str(depot)),
             "refuses it (board)", "picow")
    out.write_bytes(data[:-10])
    one_line(run("release-check", str(out), "--board", "vhub", "--running", "0.1.0", "--depot", str(depot)),
             "refuses it (truncated)")


def test_release_key_readable_by_others_is_refused(tmp_path):
    d = Depot(tmp_path / "depot")
    d.release_key()
    os.chmod(d.path / "release.key", 0o644)
    one_line(run("release", "--board", "vhub", "--version", "1.0.0", "--out", str(tmp_path / "r.sbr"),
                 "--depot", str(d.path)), "release.key", "chmod 600")


def test_cli_errors_are_one_line(tmp_path):
    depot = ["--depot", str(tmp_path / "depot")]
    one_line(run("release", "--board", "vhub", "--version", "1.02", *depot), "--version", "leading zeros")
    one_line(run("release", "--board", "vhub", "--version", "1.0", "--min-version", "2", *depot),
             "--min-version 2 is newer")
    one_line(run("release", "--board", "nope", "--version", "1.0", *depot), "no board 'nope'")
    one_line(run("release", "--board", "vhub", "--kind", "firmware", "--version", "1.0", *depot),
             "no firmware OTA")
    one_line(run("release", "--board", "esp32-devkit", "--kind", "firmware", "--version", "1.0", *depot),
             "needs --image")
    from samband.device import images
    s3 = {v: k for k, v in images.esp_chip_ids().items()}["esp32s3"]
    img = tmp_path / "s3.bin"
    img.write_bytes(bytes([0xE9, 1, 2, 0x20]) + bytes(8) + s3.to_bytes(2, "little") + bytes(50))
    one_line(run("release", "--board", "esp32-devkit", "--kind", "firmware", "--image", str(img), "--version", "1.0",
                 *depot), "esp32s3", "esp32-devkit")
    one_line(run("release", "--board", "esp32-devkit", "--kind", "firmware", "--image", str(tmp_path / "none"),
                 "--version", "1.0", *depot), "--image")
    one_line(run("release-check", str(tmp_path / "none.sbr"), "--board", "vhub", "--running", "1.0",
                 "--depot", str(tmp_path / "empty")), "no depot")
    Depot(tmp_path / "d2")
    one_line(run("release-check", str(tmp_path / "none.sbr"), "--board", "vhub", "--running", "1.0",
                 "--depot", str(tmp_path / "d2")), "no release key")


def test_firmware_release_for_an_esp32(tmp_path):
    from samband.device import images
    esp32 = {v: k for k, v in images.esp_chip_ids().items()}["esp32"]
    img = tmp_path / "app.bin"
    b = bytearray(bytes([0xE9, 1, 2, 0x20]) + bytes(8) + esp32.to_bytes(2, "little") + os.urandom(5000))
    # its esp_app_desc_t at offset 32 (magic 0xABCD5432), whose version (offset 48) is the release's
    b[32:48] = b"\x32\x54\xcd\xab" + bytes(12)
    b[48:80] = b"2.0.0".ljust(32, b"\0")
    img.write_bytes(bytes(b))
    out, m, public = release.make("esp32-devkit", "2.0.0", "1.0.0", "firmware", img, tmp_path / "fw.sbr",
                                  tmp_path / "depot", when=WHEN)
    got = fmt.verify_stream(io.BytesIO(out.read_bytes()), public, "esp32-devkit", "1.5.0", kind="firmware")
    assert got["sha512"] == nb.crypto_hash_sha512(img.read_bytes()) and got["time"] == WHEN


def test_provisioning_gives_the_hub_the_release_key(tmp_path):
    from samband.device.provision import files_for, to_flash_folder
    d = Depot(tmp_path / "depot")
    flash = tmp_path / "flash"
    to_flash_folder(flash, files_for(d, bytes.fromhex("00005a4d0001")))
    assert fmt.load_key(str(flash / "keys")) == d.release_public()
    out, _, _ = release.make("vhub", "9.0.0", depot=d, out=tmp_path / "r.sbr")
    with open(out, "rb") as f:
        assert fmt.verify_stream(f, fmt.load_key(str(flash / "keys")), "vhub", "0.1.0")["v"] == "9.0.0"
    with pytest.raises(fmt.ReleaseError) as e:
        fmt.load_key(str(tmp_path / "nowhere"))
    assert e.value.code == "key" and "provision" in str(e.value)


def test_a_provisioned_virtual_hub_checks_releases(tmp_path, mpy):
    # the hub's flash as `samband provision` and a firmware deploy leave it; the releases
    # come from `samband release`; the check runs on the unix port with the hub's own
    # board.json, keys/release.pub and VERSION
    from conftest import firmware_tree

    from hub import VERSION
    from samband.device.provision import files_for, to_flash_folder
    d = Depot(tmp_path / "depot")
    flash = tmp_path / "flash"
    to_flash_folder(flash, files_for(d, bytes.fromhex("00005a4d0001")))
    (flash / "board.json").write_bytes((firmware_tree() / "board.json").read_bytes())
    major, minor, patch = fmt.parse_version(VERSION)
    newer = f"{major}.{minor}.{patch + 1}"
    script = ("from hub import VERSION, board, release\n"  # as otaslot checks a staged release
              "try:\n"
              "    with open('update.sbr', 'rb') as f:\n"
              "        m = release.verify_stream(f, release.load_key('keys'), board.load('board.json')['name'],\n"
              "                                  VERSION)\n"
              "    print('TAKEN', m['v'], m['size'])\n"
              "except release.ReleaseError as e:\n"
              "    print('REFUSED', e.code)\n")
    for board, version, want in (("vhub", newer, f"TAKEN {newer}"), ("picow", newer, "REFUSED board"),
                                 ("vhub", VERSION, "REFUSED same")):
        release.make(board, version, depot=d, out=flash / "update.sbr")
        p = mpy(["-c", script], cwd=flash)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        assert p.stdout.decode().startswith(want), (board, version, p.stdout)
    other = Depot(tmp_path / "other-depot")  # a release signed by a key this hub was not given
    release.make("vhub", newer, depot=other, out=flash / "update.sbr")
    assert mpy(["-c", script], cwd=flash).stdout.decode().strip() == "REFUSED signature"
