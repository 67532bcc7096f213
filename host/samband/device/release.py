"""`samband release`: build a signed release for hubs of one board (docs/ota.md).

The format is the hub's (firmware/hub/release.py, imported here so that
the host writes exactly what the hub reads): a CBOR manifest naming the
image by size and SHA-512, its Ed25519 signature by the depot's release
key, then the image. An "app" release carries the hub package as the
ROMFS image of `samband firmware` (build/<board>.romfs); a "tree" release
the whole firmware tree (build/<board>/) for a slot folder, which a hub
takes over the air (`samband ota`, hub/ota.py); a "firmware" release
carries a whole MicroPython image for an ESP32's OTA partition.
The signing key never leaves the depot and is never printed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nacl.bindings as nb

from hub import cbor
from hub import release as fmt
from samband.errors import SambandError
from samband.paths import BUILD

if TYPE_CHECKING:
    from samband.device.depot import Depot


def manifest(board: str, kind: str, version: str, min_version: str, image: bytes, when: int) -> bytes:
    """The manifest's CBOR bytes (deterministic encoding) for an image."""
    return cbor.dumps({"v": version, "min": min_version, "board": board, "kind": kind, "size": len(image),
                       "sha512": nb.crypto_hash_sha512(image), "time": int(when)})


def assemble(manifest_bytes: bytes, image: bytes, seed: bytes) -> bytes:
    """The release bytes: header, manifest, signature (by the 32-byte seed), image."""
    if not 0 < len(manifest_bytes) <= fmt.MAX_MANIFEST:
        raise SambandError(f"manifest of {len(manifest_bytes)} bytes is outside 1..{fmt.MAX_MANIFEST}")
    _, sk = nb.crypto_sign_seed_keypair(seed)
    sig = nb.crypto_sign(fmt.DOMAIN + manifest_bytes, sk)[:64]
    n = len(manifest_bytes)
    return fmt.MAGIC + bytes((n >> 8, n & 0xFF)) + manifest_bytes + sig + image


def check_versions(version: str, min_version: str) -> None:
    """Both versions well-formed and min_version <= version, else a one-line SambandError."""
    for flag, v in (("--version", version), ("--min-version", min_version)):
        try:
            fmt.parse_version(v)
        except fmt.ReleaseError as e:
            raise SambandError(f"{flag}: {e}") from None
    if fmt.parse_version(min_version) > fmt.parse_version(version):
        raise SambandError(f"--min-version {min_version} is newer than --version {version}: "
                           f"no hub could ever take this release")


def tree_files(root: str | Path) -> list[tuple[str, bytes]]:
    """(path, bytes) of every file under root, board.json last: a slot that has its
    board.json is whole (hub.otatree), and boot.py boots only such a slot."""
    root = Path(root)
    files = sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file())
    return [f for f in files if f[0] != "board.json"] + [f for f in files if f[0] == "board.json"]


def tree_image(root: str | Path) -> bytes:
    """A "tree" release's image: the whole firmware tree for a slot folder."""
    from hub import otatree
    files = tree_files(root)
    if not any(p == "board.json" for p, _ in files):
        raise SambandError(f"{root} has no board.json: not a firmware tree")
    try:
        return otatree.pack(files)
    except otatree.TreeError as e:
        raise SambandError(f"{root}: {e}") from None


def firmware_version(data: bytes, version: str, where: str | Path) -> None:
    """A firmware image must say the release's version in its ESP-IDF app descriptor: the
    hub reads its firmware version from there (hub/otafw.py image_version), so an image
    that said another would be offered again after it was confirmed, or never count as new."""
    from hub import otafw
    said = otafw.image_version(data[:otafw.HEAD_BYTES])
    if said != version:
        raw = bytes(data[otafw.DESC + 16:otafw.DESC + 48]).split(b"\0")[0].decode("ascii", "replace")
        what = f"says it is version {raw!r}" if raw and data[otafw.DESC:otafw.DESC + 4] == otafw.DESC_MAGIC \
            else "has no ESP-IDF app descriptor version"
        raise SambandError(f"--image {where} {what}, not {version}: build it with the ESP-IDF's PROJECT_VER "
                           f"set to {version} (the hub reads its firmware version there)")


def image_for(board: dict[str, Any], kind: str, image_path: str | Path | None = None,
              progress: Callable[[str], None] | None = None, version: str | None = None) -> bytes:
    """The bytes to release: the board's ROMFS app image or its whole tree (built now,
    or the tree given), or a firmware file."""
    from samband.device import build, images
    if kind == "tree":
        if image_path is None:
            build.build(board["name"], progress=progress)
            image_path = BUILD / board["name"]
        return tree_image(image_path)
    if kind == "app":
        if image_path is not None:
            raise SambandError("--image is for --kind firmware; an app release is built from firmware/")
        build.build(board["name"], progress=progress)
        return build.romfs_path(board["name"]).read_bytes()
    if kind != "firmware":
        raise SambandError(f"--kind {kind!r}: want one of {', '.join(fmt.KINDS)}")
    if board["port"] != "esp32":
        raise SambandError(f"board {board['name']} has no firmware OTA partitions (only ESP32 boards do); "
                           f"release --kind app instead")
    if image_path is None:
        raise SambandError("--kind firmware needs --image FILE (the MicroPython .app-bin for the board)")
    try:
        data = Path(image_path).read_bytes()
    except OSError as e:
        raise SambandError(f"--image {image_path}: {e.strerror}") from None
    info = images.esp_image(data)
    if info["chip"] != board["mcu"]:
        raise SambandError(f"--image {image_path} is for an {info['chip']}, board {board['name']} is an {board['mcu']}")
    if version is not None:
        firmware_version(data, version, image_path)
    return data


def default_out(board_name: str, kind: str, version: str) -> Path:
    return BUILD / "releases" / f"{board_name}-{kind}-{version}.sbr"


def make(board_name: str, version: str, min_version: str = "0.0.0", kind: str = "app",
         image_path: str | Path | None = None, out: str | Path | None = None, depot: Depot | str | Path | None = None,
         when: int | None = None,
         progress: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any], bytes]:
    """Build, sign and write a release; returns (path, parsed manifest, release public key)."""
    from samband.device import boards
    from samband.device.depot import Depot
    board = boards.load(board_name)
    check_versions(version, min_version)
    d = depot if isinstance(depot, Depot) else Depot(depot)
    seed = d.release_key()  # before the build: a key problem fails at once
    image = image_for(board, kind, image_path, progress, version)
    if when is None:
        when = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    data = assemble(manifest(board_name, kind, version, min_version, image, when), image, seed)
    out = Path(out) if out else default_out(board_name, kind, version)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    m, _, _ = fmt.split_header(data)
    return out, fmt.parse_manifest(m), nb.crypto_sign_seed_keypair(seed)[0]
