# Runs inside the MicroPython unix port (not CPython) as `micropython -i`,
# before the REPL: makes the process look like a board that just reset.
# The flash folder becomes "/", sys.path is a board's, boot.py runs, then
# main.py unless the supervisor restarts us into the raw REPL (a board
# skips main.py after a soft reset from the raw REPL too).
import os as _os
import sys as _sys
import vfs as _vfs


class _Flash:
    # VfsPosix with a root folder, mounted at "/", so that the flash folder
    # looks like a board's littlefs. VfsPosix.rename builds both paths in
    # one shared buffer, so with two absolute paths it renames the new
    # name onto itself (ENOENT); giving it the new name relative to the
    # current directory avoids that. Everything else passes straight through.
    def __init__(self, root):
        self._v = _vfs.VfsPosix(root)
        for name in ("open", "chdir", "getcwd", "mkdir", "remove",
                     "rmdir", "stat", "statvfs"):
            setattr(self, name, getattr(self._v, name))

    def ilistdir(self, path):
        # littlefs gives (name, type, inode, size); VfsPosix leaves size out.
        d = path if path.endswith("/") else path + "/"
        for e in self._v.ilistdir(path):
            size = 0 if e[1] == 0x4000 else self._v.stat(d + e[0])[6]
            yield (e[0], e[1], 0, size)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def rename(self, old, new):
        if new.startswith("/"):
            depth = len([p for p in self._v.getcwd().split("/") if p])
            new = "../" * depth + new[1:]
        self._v.rename(old, new)


def _forget(before):
    for k in list(_sys.modules):
        if k not in before:
            del _sys.modules[k]


def _rom(path):
    # Read before "/" becomes the flash folder; one allocation of the exact
    # size (a growing read would need twice the image at its peak).
    img = bytearray(_os.stat(path)[6])
    with open(path, "rb") as f:
        f.readinto(img)
    return img


def _vhub_start():
    root = _os.getenv("SAMBAND_FLASH")
    rom = _os.getenv("SAMBAND_VHUB_ROMFS")
    rom = _rom(rom) if rom else None
    _vfs.umount("/")
    _vfs.mount(_Flash(root), "/")
    _os.chdir("/")
    _sys.path[:] = ["", ".frozen", "/lib"]
    if rom is not None:
        # As on a board with a ROM partition: its code runs in place and wins over the flash copy.
        _vfs.mount(_vfs.VfsRom(rom), "/rom")
        _sys.path[:0] = ["/rom"]
    # Tell the supervisor that the board is up and Ctrl-C may come: until
    # this marker it holds back what the client types.
    _sys.stdout.write("\x1dvhub-ready\x1d")
    scripts = ["boot.py"]
    if _os.getenv("SAMBAND_VHUB_RAW") != "1":
        scripts.append("main.py")
    if _os.getenv("SAMBAND_VHUB_RESUME") == "1":
        scripts = []  # the last interpreter died of a Ctrl-C: a board would be at its REPL
    before = set(_sys.modules)
    for name in scripts:
        try:
            _os.stat(name)
        except OSError:
            continue
        try:
            with open(name) as f:
                code = compile(f.read(), name, "exec")
            exec(code, globals())
        except KeyboardInterrupt as e:
            # Ctrl-C while booting means "give me the REPL": main.py does not start.
            # The unix port can take that interrupt in the middle of an import and
            # leave a half-made module behind (a board would not); forget what the
            # scripts imported, so the REPL imports it again, whole.
            _sys.print_exception(e)
            _forget(before)
            break
        except SystemExit as e:
            # machine.soft_reset() / sys.exit(): end the process, the supervisor restarts us.
            _sys.exit(e.value if hasattr(e, "value") else 0)
        except BaseException as e:
            # (an interrupt swallowed inside an import surfaces as an ImportError here)
            _sys.print_exception(e)
            _forget(before)


_vhub_start()
del _vhub_start, _forget, _rom, _Flash, _os, _sys, _vfs
