# Runs inside the MicroPython unix port (not CPython) as `micropython -i`,
# before the REPL: makes the process look like a board that just reset.
# The flash image (littlefs, see vhub/flash.py) is mounted at "/", sys.path
# is a board's, boot.py runs, then main.py unless the supervisor restarts us into the raw REPL (a board
# skips main.py after a soft reset from the raw REPL too).
import os as _os
import sys as _sys

import vfs as _vfs


class _Flash:
    # The flash chip: a block device over the image file, with the methods
    # vfs.VfsLfs2 calls (MicroPython docs, "Simple and extended interface" of
    # block devices: readblocks/writeblocks with an offset, ioctl 4 = block
    # count, 5 = block size, 6 = erase). Each write goes to the file with one
    # write(2) before writeblocks returns, so the image holds exactly what
    # littlefs has programmed: what it keeps in RAM and has not synced is
    # lost when the process dies, as on a board at a power cut. It counts
    # what it programs and erases (import _vhub_flash: tests/bench).
    #
    # No branch and no loop in the methods littlefs calls: the VM checks for
    # a pending KeyboardInterrupt at jumps, and one raised here would unwind
    # through littlefs mid-operation. (This unix port build also raises a
    # Ctrl-C asynchronously from its SIGINT handler, anywhere, littlefs's C
    # code included: docs/journal.md "The virtual hub's flash", known limit.)
    def __init__(self, path):
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.n = self.f.tell() // 4096
        self.ff = b"\xff" * 512  # (not 4096: the heap is a board's)
        self.progs = self.prog_bytes = self.erases = 0
        self.ops = {4: self._count, 5: self._size, 6: self._erase}

    def readblocks(self, block, buf, off=0):
        self.f.seek(block * 4096 + off)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, off=0):
        self.f.seek(block * 4096 + off)
        self.f.write(buf)
        self.progs += 1
        self.prog_bytes += len(buf)

    def ioctl(self, op, arg):
        return self.ops.get(op, self._zero)(arg)

    def _count(self, arg):
        return self.n

    def _size(self, arg):
        return 4096

    def _zero(self, arg):
        return 0

    def _erase(self, block):
        # a NOR flash reads 0xFF after an erase; eight writes, unrolled (see above)
        f, ff = self.f, self.ff
        f.seek(block * 4096)
        f.write(ff)
        f.write(ff)
        f.write(ff)
        f.write(ff)
        f.write(ff)
        f.write(ff)
        f.write(ff)
        f.write(ff)
        self.erases += 1
        return 0


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
    dev = _Flash(root)  # opened before "/" stops being the host's filesystem
    warp = _os.getenv("SAMBAND_VHUB_WARP")
    if warp:
        # the host's clock warp (VirtualHub.warp), read by hub.ports.unix.Port
        _sys.modules["_vhub_warp"] = open(warp, "rb")
    _vfs.umount("/")
    _vfs.mount(_vfs.VfsLfs2(dev), "/")
    _sys.modules["_vhub_flash"] = dev
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
            # The interrupt is scheduled (see unixport.py), so it lands between
            # bytecodes as on a board, and an import it stops unregisters its
            # half-made module itself.
            _sys.print_exception(e)
            break
        except SystemExit as e:
            # machine.soft_reset() / sys.exit(): end the process, the supervisor restarts us.
            # Under `micropython -i` a SystemExit out of this script lands in the REPL
            # instead of ending the process, so say so first: the supervisor ends it
            # with this code (75: a hard reset, hub.ports.unix.Port.reset).
            code = e.value if hasattr(e, "value") else 0
            _sys.stdout.write("\x1dvhub-exit:%d\x1d" % (code if isinstance(code, int) else 1))
            _sys.exit(code)
        except BaseException as e:
            _sys.print_exception(e)


_vhub_start()
del _vhub_start, _rom, _Flash, _os, _sys, _vfs
