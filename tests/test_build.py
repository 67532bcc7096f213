"""`samband firmware`: the exact flash tree for every board, compiled for its architecture."""

import json
import shutil
import subprocess
import sys

import pytest

from samband.device import boards, build
from samband.errors import BoardError, BuildError
from samband.paths import FIRMWARE

# mpy header: b"M", version, flags (arch in bits 2..7), small-int bits
ARCH_CODES = {"x64": 2, "xtensawin": 10, "armv6m": 4}


def mpy_arch(path):
    head = path.read_bytes()[:4]
    assert head[0] == ord("M") and head[1] == 6, f"{path} is not an mpy v6 file"
    return head[2] >> 2


@pytest.mark.parametrize("board", ["vhub", "esp32-devkit", "picow", "wt32-eth01"])
def test_every_board_builds_its_exact_tree(tmp_path, board):
    out = build.build(board, tmp_path)
    b = boards.load(board)
    files = build.tree(out)
    srcs = build.sources()
    want = {str(build.target_name(r)) for r in srcs} | {"board.json"}
    assert set(files) == want
    assert (out / "boot.py").read_bytes() == (FIRMWARE / "boot.py").read_bytes()
    assert json.loads((out / "board.json").read_text())["name"] == board
    mpys = list(out.rglob("*.mpy"))
    assert len(mpys) >= 10
    native = [m for m in mpys if mpy_arch(m)]  # bytecode-only modules carry no arch
    assert native, "no module has native/viper code for this arch"
    for m in native:
        assert mpy_arch(m) == ARCH_CODES[b["arch"]], m


def test_rebuild_compiles_only_what_changed(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIRMWARE, src)
    msgs = []
    build.build("vhub", tmp_path / "out", src_root=src, progress=msgs.append)
    build.build("vhub", tmp_path / "out", src_root=src, progress=msgs.append)
    assert msgs[-1].startswith("vhub: 0 of ")
    (src / "hub" / "status.py").write_text((src / "hub" / "status.py").read_text() + "\n# touched\n")
    build.build("vhub", tmp_path / "out", src_root=src, progress=msgs.append)
    assert msgs[-1].startswith("vhub: 1 of ")


def test_removed_module_leaves_the_tree(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIRMWARE, src)
    (src / "hub" / "extra.py").write_text("X = 1\n")
    out = build.build("vhub", tmp_path / "out", src_root=src)
    assert (out / "hub" / "extra.mpy").exists()
    (src / "hub" / "extra.py").unlink()
    build.build("vhub", tmp_path / "out", src_root=src)
    assert not (out / "hub" / "extra.mpy").exists()


@pytest.mark.parametrize("board", ["esp32-devkit", "picow", "vhub"])
def test_viper_constant_over_2_30_fails_the_build(tmp_path, board):
    src = tmp_path / "src"
    shutil.copytree(FIRMWARE, src)
    (src / "hub" / "bad.py").write_text(
        "import micropython\n@micropython.viper\ndef f(a: int) -> int:\n    return a & 0xFFFFFFFF\n")
    with pytest.raises(BuildError, match=r"hub/bad.py"):
        build.build(board, tmp_path / "out", src_root=src)


def test_syntax_error_names_the_module(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIRMWARE, src)
    (src / "hub" / "broken.py").write_text("def f(:\n")
    with pytest.raises(BuildError, match=r"hub/broken.py.*"):
        build.build("vhub", tmp_path / "out", src_root=src)


def test_board_files_are_valid_and_complete():
    assert set(boards.names()) >= {"vhub", "esp32-devkit", "picow"}
    for name in boards.names():
        b = boards.load(name)
        assert b["fs_size"] <= b["flash_size"]


@pytest.mark.parametrize("patch,msg", [
    ({"arch": "z80"}, "arch"), ({"port": "zephyr"}, "port"), ({"features": ["teleport"]}, "feature"),
    ({"fs_size": 10 ** 9}, "fs_size"), ({"heap": "big"}, "heap"),
])
def test_bad_board_files_are_clear_errors(patch, msg):
    b = dict(boards.load("vhub"), **patch)
    with pytest.raises(BoardError, match=msg):
        boards.validate(b)


def test_unknown_board():
    with pytest.raises(BoardError, match="known boards"):
        boards.load("nope")


def test_cli_firmware_and_errors(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "samband.cli", *a], capture_output=True, text=True)
    p = run("firmware", "--board", "picow", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "picow" / "hub" / "cbor.mpy").exists()
    p = run("firmware", "--board", "nope")
    assert p.returncode == 1
    assert p.stderr.startswith("samband: no board 'nope'") and "Traceback" not in p.stderr
    p = run("boards")
    assert p.returncode == 0 and "esp32-devkit" in p.stdout and "xtensawin" in p.stdout
    p = run("frobnicate")
    assert p.returncode == 2


def test_firmware_board_json_parsing():
    from hub import board
    b = board.parse(json.dumps(boards.load("esp32-devkit")))
    assert board.has(b, "ble") and b["pins"]["led"] == 2
    for bad in ("{", "[]", json.dumps({"name": "x"})):
        with pytest.raises(board.BoardError):
            board.parse(bad)
