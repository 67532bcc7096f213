"""Compile firmware/ with mpy-cross into build/<board>/: exactly the file tree
that goes onto that board's flash.

boot.py and main.py stay source (a board runs only those by name); every
other module becomes .mpy for the board's architecture; board.json is
copied to the root so that the firmware knows its pins and features. A
module that fails to compile fails the whole build, for every board,
because mpy-cross is stricter on some targets than the unix port is
(viper constants above 2**30, for example).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from samband.device import boards
from samband.errors import BuildError
from samband.paths import BUILD, FIRMWARE, tool

SOURCE_FILES = ("boot.py", "main.py")  # kept as source at the flash root
MANIFEST = ".build.json"  # beside the tree, not on the flash
ROMFS = ".romfs"  # the hub package as a ROMFS image, beside the tree


def sources(root: Path = FIRMWARE) -> list[Path]:
    """Every firmware file, relative to root, in a stable order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
        for f in sorted(filenames):
            if f.endswith(".py"):
                out.append(Path(dirpath, f).relative_to(root))
    return out


def target_name(rel: Path) -> Path:
    return rel if str(rel) in SOURCE_FILES else rel.with_suffix(".mpy")


def _compile(mpy_cross: str, arch: str | None, src: Path, dst: Path, rel: Path) -> str | None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".mpy.tmp")
    p = subprocess.run([mpy_cross, f"-march={arch}", "-s", str(rel), "-o", str(tmp), str(src)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        tmp.unlink(missing_ok=True)
        return f"{rel} ({arch}): {(p.stderr or p.stdout).strip()}"
    os.replace(tmp, dst)
    return None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(board_name: str, out_root: str | Path | None = None, src_root: Path = FIRMWARE,
          progress: Callable[[str], None] | None = None) -> Path:
    """Build one board's flash tree; returns its path. Only changed modules are recompiled.

    Builds of one tree take turns (a lock file beside it): test workers and a
    technician's shell may build the same board at once, and one must not
    delete or half-write what the other is checking."""
    import fcntl
    root = Path(out_root or BUILD)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{board_name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(board_name, root, src_root, progress)


def _build(board_name: str, root: Path, src_root: Path, progress: Callable[[str], None] | None) -> Path:
    board = boards.load(board_name)
    out = root / board_name
    out.mkdir(parents=True, exist_ok=True)
    mpy_cross = tool("mpy-cross")
    version = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True).stdout.strip()
    man_path = out.parent / f"{board_name}{MANIFEST}"
    try:
        old = json.loads(man_path.read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("compiler") != version or old.get("arch") != board["arch"]:
        old = {}
    old_files = old.get("files", {})

    files, jobs = {}, []
    for rel in sources(src_root):
        src = src_root / rel
        digest = _digest(src)
        dst = out / target_name(rel)
        files[str(rel)] = digest
        if old_files.get(str(rel)) == digest and dst.exists():
            continue
        if str(rel) in SOURCE_FILES:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst.with_name(dst.name + ".tmp"))
            os.replace(dst.with_name(dst.name + ".tmp"), dst)  # a reader sees the old file or the new
        else:
            jobs.append((src, dst, rel))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda j: _compile(mpy_cross, board["arch"], *j), jobs))
    errors = [r for r in results if r]
    if errors:
        # Forget the manifest so that the next build retries everything that failed.
        man_path.unlink(missing_ok=True)
        raise BuildError("firmware does not compile for %s:\n  %s" % (board_name, "\n  ".join(errors)))

    board_json = json.dumps(board, indent=1, sort_keys=True) + "\n"
    if not (out / "board.json").exists() or (out / "board.json").read_text() != board_json:
        (out / "board.json").write_text(board_json)

    # The tree must hold exactly the firmware: drop what no source produces any more.
    wanted = {str(target_name(Path(r))) for r in files} | {"board.json"}
    for dirpath, _dirnames, filenames in os.walk(out, topdown=False):
        for f in filenames:
            rel = str(Path(dirpath, f).relative_to(out))
            if rel not in wanted:
                os.unlink(Path(dirpath, f))
        if dirpath != str(out) and not os.listdir(dirpath):
            os.rmdir(dirpath)

    man_path.write_text(json.dumps({"board": board_name, "arch": board["arch"], "compiler": version,
                                    "files": files}, indent=1, sort_keys=True))
    image = romfs_image(out)
    tmp = out.parent / f"{board_name}{ROMFS}.tmp"
    tmp.write_bytes(image)
    os.replace(tmp, out.parent / f"{board_name}{ROMFS}")
    if progress:
        progress(f"{board_name}: {len(jobs)} of {len(files)} modules compiled for {board['arch']} -> {out}")
    return out


def romfs_image(tree: str | Path, package: str = "hub") -> bytes:
    """The firmware package of a built tree as a ROMFS image (mpremote's format).

    On a board whose MicroPython has a ROMFS partition, bytecode imported
    from it runs in place from flash instead of being copied into the heap:
    the whole hub package costs about half the heap it costs from littlefs
    (docs/development.md). `mpremote romfs deploy build/<board>.romfs`
    writes it; `samband vhub --romfs` runs the virtual hub the same way."""
    from mpremote.romfs import VfsRomWriter
    w = VfsRomWriter()

    def add(folder: Path, name: str) -> None:
        w.opendir(name)
        for p in sorted(folder.iterdir()):
            if p.is_dir():
                add(p, p.name)
            else:
                w.mkfile(p.name, p.read_bytes())
        w.closedir()

    add(Path(tree) / package, package)
    return w.finalise()


def romfs_path(board_name: str, out_root: str | Path | None = None) -> Path:
    return Path(out_root or BUILD) / f"{board_name}{ROMFS}"


def build_all(out_root: str | Path | None = None, progress: Callable[[str], None] | None = None) -> list[Path]:
    """Build every board; all boards are attempted and every failure reported."""
    errors, outs = [], []
    for name in boards.names():
        try:
            outs.append(build(name, out_root, progress=progress))
        except BuildError as e:
            errors.append(str(e))
    if errors:
        raise BuildError("\n".join(errors))
    return outs


def tree(path: str | Path) -> dict[str, str]:
    """{relative path: sha256} of a flash tree, for deploy and tests."""
    path = Path(path)
    return {str(p.relative_to(path)): _digest(p) for p in sorted(path.rglob("*")) if p.is_file()}
