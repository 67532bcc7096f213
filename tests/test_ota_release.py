"""Tree releases (the image a hub takes over the air, hub/otatree.py) as the host
builds them: the fixtures in tests/data/ota/ that tests/fw/test_ota.py runs on both
runtimes are exactly what samband.device.release builds, board.json goes last, and
`samband release --kind tree` signs a tree that the hub's own checks accept."""

from pathlib import Path

import golden_kit
import nacl.bindings as nb
import pytest

from hub import otatree
from hub import release as fmt
from samband.device import release
from samband.errors import SambandError

FIXTURES = Path(__file__).parent / "data" / "ota"
TEST_SEED = bytes(range(100, 132))  # tests/data/release's test key (release.pub there)
OTHER_SEED = bytes(range(200, 232))
WHEN = 1764633600


def tree(version, extra=b""):
    """A small firmware tree (what a slot holds) for a hub running `version`."""
    return {"board.json": b'{"name": "vhub"}', "main.py": b"from hub import app\napp.run()\n",
            "hub/__init__.py": f'VERSION = "{version}"\n'.encode(),
            "hub/app.py": b"def run():\n    pass\n" + extra,
            "hub/kinds/x.py": bytes(range(256)) * 3}


def esp_app(version, n):
    """An ESP32 app image's bytes as far as the hub and the host look: the image header (magic
    0xE9, an ESP32's chip id 0 at offset 12) and the esp_app_desc_t at offset 32 whose version
    field (offset 48) is the firmware's own version (hub/otafw.py image_version)."""
    b = bytearray((i * 7 + 3) & 0xFF for i in range(n))
    b[0], b[1] = 0xE9, 3
    b[12:14] = b"\x00\x00"
    b[32:48] = b"\x32\x54\xcd\xab" + bytes(12)
    b[48:80] = version.encode().ljust(32, b"\0")
    return bytes(b)


def image(files):
    return otatree.pack(sorted((p, d) for p, d in files.items() if p != "board.json")
                        + [("board.json", files["board.json"])])


def fixtures():
    """{file name: bytes} of tests/data/ota/."""
    new = image(tree("1.1.0", b"# a fix\n" * 40))
    good = release.manifest("vhub", "tree", "1.1.0", "1.0.0", new, WHEN)
    fw = esp_app("1.1.0", 10002)  # not a whole number of 4 KB pages
    altered = bytearray(new)
    altered[-5] ^= 1
    return {
        "old.tree": image(tree("1.0.0")),
        "good.sbr": release.assemble(good, new, TEST_SEED),
        "other-key.sbr": release.assemble(good, new, OTHER_SEED),
        "picow.sbr": release.assemble(release.manifest("picow", "tree", "1.1.0", "1.0.0", new, WHEN), new, TEST_SEED),
        "old.sbr": release.assemble(release.manifest("vhub", "tree", "0.9.0", "0.1.0", new, WHEN), new, TEST_SEED),
        "altered.sbr": release.assemble(good, bytes(altered), TEST_SEED),
        # whole-firmware releases for an ESP32's OTA partitions (tests/fw/test_otafw.py): an app image
        # starts with the IDF's image magic 0xE9 (what set_boot's check looks at in the stand-in)
        "fw.sbr": release.assemble(release.manifest("esp32-devkit", "firmware", "1.1.0", "1.0.0", fw, WHEN), fw,
                                   TEST_SEED),
        "fw-altered.sbr": release.assemble(release.manifest("esp32-devkit", "firmware", "1.1.0", "1.0.0", fw, WHEN),
                                           fw[:-1] + bytes((fw[-1] ^ 1,)), TEST_SEED),
        "fw-notapp.sbr": release.assemble(release.manifest("esp32-devkit", "firmware", "1.1.0", "1.0.0", b"\0" + fw[1:],
                                                           WHEN), b"\0" + fw[1:], TEST_SEED),
    }


def test_fixtures_are_what_the_host_builds():
    # regenerate with: python -c "import test_ota_release as t; t.write_fixtures()" (from tests/)
    golden_kit.check(FIXTURES, fixtures())


def write_fixtures():
    golden_kit.write(FIXTURES, fixtures())


def test_tree_image_of_a_folder_puts_board_json_last(tmp_path):
    for p, d in tree("1.1.0").items():
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(d)
    assert release.tree_image(tmp_path) == image(tree("1.1.0"))
    (tmp_path / "board.json").unlink()
    with pytest.raises(SambandError, match="no board.json"):
        release.tree_image(tmp_path)


def test_release_kind_tree_is_accepted_by_the_hub_checks(tmp_path):
    for p, d in tree("1.1.0").items():
        (tmp_path / "t" / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "t" / p).write_bytes(d)
    (tmp_path / "depot").mkdir(mode=0o700)
    out, m, public = release.make("vhub", "1.1.0", "1.0.0", "tree", tmp_path / "t", tmp_path / "r.sbr",
                                  tmp_path / "depot", when=WHEN)
    assert m["kind"] == "tree" and m["v"] == "1.1.0"
    import io
    got = fmt.verify_stream(io.BytesIO(out.read_bytes()), public, "vhub", "1.0.0", kind="tree")
    assert got["size"] == len(image(tree("1.1.0"))) and got["sha512"] == nb.crypto_hash_sha512(image(tree("1.1.0")))


def _samband(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "samband.cli", *args], capture_output=True, text=True, timeout=60)


def test_ota_stage_refuses_what_cannot_go_over_the_air():
    p = _samband("ota", "stage", str(Path(__file__).parent / "data" / "release" / "good.sbr"), "--hub",
                 "00005a4d0001", "--port", "1")
    assert p.returncode == 1 and "app releases cannot go over the air yet" in p.stderr, p.stderr
    p = _samband("ota", "stop", "--hub", "hub-one")
    assert p.returncode == 1 and "--hub hub-one: a hub id is its unique id in hex" in p.stderr, p.stderr
    p = _samband("ota", "stage", str(FIXTURES / "good.sbr"), "--hub", "00005a4d0001", "--port", "1")
    assert p.returncode == 1 and "cannot reach the MQTT broker at localhost:1" in p.stderr, p.stderr


def test_release_kind_firmware_needs_the_image_to_say_its_version(tmp_path):
    """The hub reads its firmware version from the image's app descriptor (hub/otafw.py), so the
    host signs only an image that says the release's version there."""
    (tmp_path / "depot").mkdir(mode=0o700)
    for said in ("1.1.0", "v1.1.0"):
        (tmp_path / "app.bin").write_bytes(esp_app(said, 5000))
        out, m, public = release.make("esp32-devkit", "1.1.0", "1.0.0", "firmware", tmp_path / "app.bin",
                                      tmp_path / "r.sbr", tmp_path / "depot", when=WHEN)
        import io
        assert fmt.verify_stream(io.BytesIO(out.read_bytes()), public, "esp32-devkit", "1.0.0",
                                 kind="firmware")["v"] == "1.1.0"
    (tmp_path / "app.bin").write_bytes(esp_app("v1.0.0", 5000))
    with pytest.raises(SambandError, match=r"says it is version 'v1.0.0', not 1.1.0: build it with the ESP-IDF's "
                                           r"PROJECT_VER set to 1.1.0"):
        release.make("esp32-devkit", "1.1.0", "1.0.0", "firmware", tmp_path / "app.bin", tmp_path / "r.sbr",
                     tmp_path / "depot", when=WHEN)
    bare = bytearray(esp_app("1.1.0", 5000))
    bare[32:36] = bytes(4)  # no app descriptor
    (tmp_path / "app.bin").write_bytes(bytes(bare))
    with pytest.raises(SambandError, match="has no ESP-IDF app descriptor version, not 1.1.0"):
        release.make("esp32-devkit", "1.1.0", "1.0.0", "firmware", tmp_path / "app.bin", tmp_path / "r.sbr",
                     tmp_path / "depot", when=WHEN)


def test_rollout_takes_firmware_releases_and_watches_their_own_version():
    from samband.device import ota
    r = ota.Rollout((FIXTURES / "fw.sbr").read_bytes(), ["h1", "h2"], "localhost", 1, chunk=1024)
    assert (r.kind, r.version, len(r.parts)) == ("firmware", "1.1.0", 10)
    r.progress = {"h1": {"st": "done", "v": "0.1.0", "fv": "1.1.0"}, "h2": {"st": "done", "v": "1.1.0"}}
    assert r.runs_it("h1") and not r.runs_it("h2")  # a firmware release changes fv, not the app's v
    line = ota.progress_text("h3", {"st": "refused", "v": "0.1.0", "r": "kind"})
    assert line == ("h3  runs 0.1.0  refused  (refused: kind: a kind of release this hub cannot take "
                    "(a firmware release needs ESP32 OTA partitions))"), line
    assert ota.progress_text("h1", r.progress["h1"]) == "h1  runs 0.1.0 on firmware 1.1.0  done"
