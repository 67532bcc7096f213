"""The virtual hub's flash: a littlefs image file, as on a board.

Why an image and not a host folder: a folder lives in the host's page cache,
so a power cut (SIGKILL) kept every write the journal had made, even those
littlefs on a board would drop because they were never synced. The image is
mounted inside the interpreter with MicroPython's own `vfs.VfsLfs2` over a
block device that writes straight to this file (vhub/boot.py); what littlefs
holds in RAM and has not committed is gone at a cut, exactly as on a board.

The host side reads and writes the same image with littlefs-python (the
littlefs C library) in the same geometry: 4096-byte blocks, 32-byte reads and
programs. Every change is made on a copy in
memory and replaces the image in one rename, so a host tool that dies
half-way never leaves a damaged image behind.

While a hub runs, its supervisor holds an exclusive lock (flock on
`flash.lock` beside the image): host tools that would read a half-written
image or write under a running littlefs get a one-line error instead.
`snapshot()` reads a running hub's flash consistently: the interpreter is
stopped (SIGSTOP), the image copied, and it goes on (SIGCONT); the copy is
what the flash would hold after a power cut at that moment.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from littlefs import LittleFS

from samband.errors import HubError

IMAGE = "flash.img"
LOCK = "flash.lock"
BLOCK_SIZE = 4096  # an ESP32 flash sector, the erase unit littlefs works in
DEFAULT_SIZE = 2 * 1024 * 1024  # an ESP32's vfs partition on a 4 MB module
# What vfs.VfsLfs2 uses by default (readsize, progsize, lookahead 32; a
# cache of 4 x 32 bytes), so that host and hub write the image alike; the
# on-disk version is littlefs's current one (2.1), which MicroPython's
# littlefs writes too. Reading only, the host caches a whole block: listing
# a firmware tree is 30 times faster, and a read cannot change the image.
GEOMETRY = {"read_size": 32, "prog_size": 32, "lookahead_size": 32, "cache_size": 128}
READ_GEOMETRY = dict(GEOMETRY, cache_size=BLOCK_SIZE)
HOST_FILES = (IMAGE, LOCK)  # in the flash folder, but not on the flash


class FlashError(HubError):
    pass


def _norm(path: str) -> str:
    p = "/" + str(path).strip("/")
    if "/../" in p + "/" or "/./" in p + "/":
        raise FlashError(f"{path!r}: want an absolute path on the flash without . or ..")
    return p


def _stat(fs: LittleFS, path: str) -> Any:
    """littlefs-python's stat raises LittleFSError(-2) for a missing entry; make it FileNotFoundError."""
    from littlefs.errors import LittleFSError
    try:
        return fs.stat(path)
    except LittleFSError as e:
        if e.code == LittleFSError.Error.LFS_ERR_NOENT:
            raise FileNotFoundError(path) from None
        raise


class _Mounted:
    """A mounted copy of the image (littlefs-python), with the few file
    operations the host needs. Paths are absolute, as on the hub."""

    def __init__(self, fs: LittleFS) -> None:
        self.fs = fs
        self.changed = False

    def read(self, path: str) -> bytes:
        with self.fs.open(_norm(path), "rb") as f:
            return bytes(f.read())

    def exists(self, path: str) -> bool:
        try:
            _stat(self.fs, _norm(path))
            return True
        except FileNotFoundError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return _stat(self.fs, _norm(path)).type == 2
        except FileNotFoundError:
            return False

    def write(self, path: str, data: bytes) -> None:
        p = _norm(path)
        d = p.rsplit("/", 1)[0]
        if d:
            self.fs.makedirs(d, exist_ok=True)
        with self.fs.open(p, "wb") as f:
            f.write(bytes(data))
        self.changed = True

    def remove(self, path: str) -> None:
        try:
            _stat(self.fs, _norm(path))
        except FileNotFoundError:
            return
        self.fs.remove(_norm(path))
        self.changed = True

    def listing(self, under: str = "/") -> dict[str, int]:
        """{path: size} of every file below `under` (nothing if it is absent)."""
        top = _norm(under)
        if not self.is_dir(top):
            return {}
        out = {}
        for root, _dirs, files in self.fs.walk(top):
            for name in files:
                p = root.rstrip("/") + "/" + name
                out[p] = self.fs.stat(p).size
        return out


class Flash:
    """The littlefs image of one virtual hub, `<folder>/flash.img`."""

    def __init__(self, folder: str | Path, size: int = DEFAULT_SIZE) -> None:
        self.folder = Path(folder)
        self.image = self.folder / IMAGE
        self.size = size
        self._lock_fd = None

    def __repr__(self) -> str:
        return f"Flash({str(self.folder)!r})"

    # -- the image ----------------------------------------------------------------
    def exists(self) -> bool:
        return self.image.is_file()

    def ensure(self) -> Flash:
        """Create (format) the image if there is none. A folder of an older
        samband (plain files, no image) is refused with one line: its files
        would otherwise be silently ignored."""
        if self.exists():
            return self
        ours = HOST_FILES + ("pre-image",)
        old = [p.name for p in self.folder.iterdir() if p.name not in ours] if self.folder.is_dir() else []
        if old:
            raise FlashError(
                f"{self.folder} is a flash folder of an older samband (files such as {sorted(old)[0]!r}, "
                f"no {IMAGE}); the virtual hub's flash is now a littlefs image: run "
                f"`samband vhub --flash {self.folder} --convert` once, or remove the folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.size % BLOCK_SIZE or self.size < 16 * BLOCK_SIZE:
            raise FlashError(f"flash size {self.size}: want a multiple of {BLOCK_SIZE} of at least 64 KiB")
        fs = self._fs(bytearray(b"\xff" * self.size))
        fs.format()
        self._save(fs)
        return self

    def convert(self) -> int:
        """Turn an older plain flash folder into an image: every file goes onto
        the flash, the originals move to `<folder>/pre-image/`. Returns how many."""
        if self.exists():
            raise FlashError(f"{self.folder} already holds {IMAGE}: nothing to convert")
        files = {}
        for p in sorted(self.folder.rglob("*")) if self.folder.is_dir() else []:
            rel = p.relative_to(self.folder).as_posix()
            if p.is_file() and rel not in HOST_FILES and not rel.startswith("pre-image/"):
                files["/" + rel] = p.read_bytes()
        keep = self.folder / "pre-image"
        keep.mkdir(exist_ok=True)
        for p in list(self.folder.iterdir()):
            if p.name not in HOST_FILES and p != keep:
                p.rename(keep / p.name)
        self.ensure()
        self.write_files(files)
        return len(files)

    def _fs(self, buf: bytearray, geometry: dict[str, int] = GEOMETRY) -> LittleFS:
        from littlefs import LittleFS, UserContext
        return LittleFS(context=UserContext(buffer=buf), block_size=BLOCK_SIZE,
                        block_count=len(buf) // BLOCK_SIZE, mount=False, **geometry)

    def _load(self, geometry: dict[str, int] = GEOMETRY) -> LittleFS:
        try:
            buf = bytearray(self.image.read_bytes())
        except FileNotFoundError:
            raise FlashError(f"no flash image {self.image}: the virtual hub has not been set up here") from None
        if not buf or len(buf) % BLOCK_SIZE:
            raise FlashError(f"{self.image} is {len(buf)} bytes, not a whole number of {BLOCK_SIZE}-byte blocks")
        fs = self._fs(buf, geometry)
        try:
            fs.mount()
        except Exception as e:  # littlefs-python raises LittlefsError (a plain Exception)
            raise FlashError(f"{self.image} does not mount as littlefs: {e}") from None
        return fs

    def _save(self, fs: LittleFS) -> None:
        _write_private(self.image, fs.context.buffer)

    # -- reading and writing (not while a hub runs) ------------------------------
    @contextmanager
    def edit(self) -> Iterator[_Mounted]:
        """A mounted copy of the image; saved back in one rename if anything changed."""
        with self._held(fcntl.LOCK_EX):
            fs = self._load()
            m = _Mounted(fs)
            yield m
            if m.changed:
                fs.unmount()
                self._save(fs)

    @contextmanager
    def view(self) -> Iterator[_Mounted]:
        """A mounted copy of the image, for reading."""
        with self._held(fcntl.LOCK_SH):
            yield _Mounted(self._load(READ_GEOMETRY))

    def read(self, path: str) -> bytes:
        """The bytes of one file; FileNotFoundError if it is not on the flash."""
        with self.view() as m:
            return m.read(path)

    def exists_file(self, path: str) -> bool:
        with self.view() as m:
            return m.exists(path)

    def write(self, path: str, data: bytes) -> None:
        self.write_files({path: data})

    def write_files(self, files: dict[str, bytes]) -> None:
        with self.edit() as m:
            for path, data in files.items():
                m.write(path, data)

    def remove(self, path: str) -> None:
        with self.edit() as m:
            m.remove(path)

    def listing(self, under: str = "/") -> dict[str, int]:
        with self.view() as m:
            return m.listing(under)

    def files(self, under: str = "/") -> dict[str, bytes]:
        """{path: bytes} of every file below `under`."""
        with self.view() as m:
            return {p: m.read(p) for p in m.listing(under)}

    def export(self, under: str, dest: str | Path) -> Path:
        """Copy a folder of the flash (e.g. /journal) into a host folder, for
        readers that work on files (hub.journal under CPython). Returns dest."""
        dest = Path(dest)
        top = _norm(under)
        dest.mkdir(parents=True, exist_ok=True)
        for p, data in self.files(top).items():
            out = dest / p[len(top):].lstrip("/")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        return dest

    def load(self, under: str, src: str | Path) -> None:
        """Write a host folder's files onto the flash below `under` (the
        reverse of export: a test that damaged exported files puts them back)."""
        src, top = Path(src), _norm(under)
        with self.edit() as m:
            old = set(m.listing(top))
            new = {}
            for p in src.rglob("*"):
                if p.is_file():
                    new[top.rstrip("/") + "/" + p.relative_to(src).as_posix()] = p.read_bytes()
            for p in old - set(new):
                m.remove(p)
            for p, data in new.items():
                m.write(p, data)

    def stats(self) -> tuple[int, int]:
        """(bytes total, bytes in use) as littlefs counts them."""
        with self.view() as m:
            used = m.fs.used_block_count
            return m.fs.block_count * BLOCK_SIZE, used * BLOCK_SIZE

    # -- a running hub -------------------------------------------------------------
    def hold(self) -> None:
        """Take the image for a running hub (the supervisor): others get a clear error until release()."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise FlashError(f"{self.image} is in use by another running virtual hub") from None
            raise
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def _held(self, how: int) -> Iterator[None]:
        if self._lock_fd is not None:
            raise FlashError(f"{self.image} belongs to the hub running on it: read it with snapshot()")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, how | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    raise FlashError(f"{self.image} is in use by a running virtual hub: stop it first, "
                                     f"or read it through the hub's snapshot()") from None
                raise
            yield
        finally:
            os.close(fd)

    def snapshot(self, pid: int | None = None, dest: str | Path | None = None) -> Flash:
        """A consistent copy of the image. With `pid`, the interpreter writing
        it is stopped while it is copied, so the copy is the flash at one
        instant: what a power cut then would leave. Returns a Flash in `dest`
        if given, else a FlashCopy in memory (nothing to clean up)."""
        stopped = False
        if pid:
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped = True
                _wait_stopped(pid)
            except ProcessLookupError:
                stopped = False  # it is gone: nothing writes the image
        try:
            data = self.image.read_bytes()
        finally:
            if stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        if dest is None:
            return FlashCopy(data, f"a snapshot of {self.image}")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        _write_private(dest / IMAGE, data)
        return Flash(dest, self.size)


class FlashCopy(Flash):
    """A copy of an image held in memory (a snapshot): read-only, no lock."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = bytes(data)
        self.what = what
        self._lock_fd = None
        self.image = Path(what)

    def __repr__(self) -> str:
        return f"FlashCopy({self.what!r})"

    def exists(self) -> bool:
        return True

    @contextmanager
    def view(self) -> Iterator[_Mounted]:
        fs = self._fs(bytearray(self.data), READ_GEOMETRY)
        try:
            fs.mount()
        except Exception as e:  # noqa: BLE001 - LittleFSError
            raise FlashError(f"{self.what} does not mount as littlefs: {e}") from None
        yield _Mounted(fs)

    def edit(self) -> NoReturn:
        raise FlashError(f"{self.what} is a read-only copy")


def _write_private(path: Path, data: bytes | bytearray) -> None:
    """Replace a file in one rename, readable by its owner only: the image holds the hub's secret key."""
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _wait_stopped(pid: int) -> None:
    """kill() returns before the target has stopped; a write in flight finishes first."""
    for _ in range(100000):
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            return
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.0005)
    raise FlashError(f"interpreter {pid} did not stop for a snapshot")


def as_flash(flash: Flash | str | Path) -> Flash:
    """A Flash from a Flash or a folder path."""
    return flash if isinstance(flash, Flash) else Flash(flash)
