# The image of a "tree" release: a whole firmware tree (what `samband
# deploy` puts in a slot folder: board.json, boot.py, main.py, hub/...) as
# one byte string, so that a slot can be filled from a stream one chunk at
# a time without the image ever being whole in the heap (docs/ota.md).
#
#   "SbT" 0x01 | entries: path length (u8, 1..120) | path (ASCII) | size (u32 BE) | the file's bytes
#
# A path is relative, its parts made of [A-Za-z0-9_.-], none empty, "."
# or "..": an image can never write outside its slot. The host writes
# board.json last, so a slot that has its board.json is whole. Pure apart
# from the files the Unpacker writes.

from hub.state import mkdirs
from hub.errors import HubError

MAGIC = b"SbT\x01"
MAX_PATH = 120
_OK = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


class TreeError(HubError):
    """A tree image the hub refuses (bad magic, a path outside the slot, a cut entry)."""


def check_path(p):
    """p (bytes) if it is a safe relative path, else TreeError."""
    if not 0 < len(p) <= MAX_PATH:
        raise TreeError("tree entry path of %d bytes (1..%d)" % (len(p), MAX_PATH))
    for part in p.split(b"/"):
        if not part or part == b"." or part == b"..":
            raise TreeError("tree entry path %r has an empty, . or .. part" % (p,))
        for c in part:
            if c not in _OK:
                raise TreeError("tree entry path %r has a character outside [A-Za-z0-9_.-]" % (p,))
    return p


def pack(files):
    """The image of files, a list of (path str, bytes), in the order given."""
    out = bytearray(MAGIC)
    for path, data in files:
        p = check_path(path.encode())
        n = len(data)
        out += bytes((len(p),)) + p + bytes((n >> 24, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF))
        out += data
    return bytes(out)


class Unpacker:
    """Writes a tree image into the folder root as it streams in: feed(chunk)
    any number of times (chunks of any size), then finish(). step(name) is
    called before each file is opened (the power-cut tests stop there);
    guard(size), if given, too: it raises to stop before a file the flash
    should not take (hub/ota.py keeps the journal's room)."""

    def __init__(self, root, step=None, guard=None):
        self.root = root
        self.step = step
        self.guard = guard
        self.head = bytearray()  # the bytes of the entry header being read (or the magic)
        self.left = 0            # bytes of the current file still to come
        self.f = None
        self.files = 0
        self.magic = False

    def feed(self, chunk):
        mv = memoryview(chunk)
        i = 0
        n = len(mv)
        while i < n:
            if self.left:
                k = min(self.left, n - i)
                self.f.write(mv[i:i + k])
                self.left -= k
                i += k
                if not self.left:
                    self._close()
                continue
            self.head.append(mv[i])
            i += 1
            self._header()

    def _header(self):
        h = self.head
        if not self.magic:
            if len(h) == 4:
                if bytes(h) != MAGIC:
                    raise TreeError("not a tree image (bad magic)")
                self.magic = True
                self.head = bytearray()
            return
        if len(h) < 1 or len(h) < 1 + h[0] + 4:
            if len(h) == 1 and not 0 < h[0] <= MAX_PATH:
                raise TreeError("tree entry path of %d bytes (1..%d)" % (h[0], MAX_PATH))
            return
        k = h[0]
        path = check_path(bytes(h[1:1 + k])).decode()
        s = h[1 + k:]
        self.left = (s[0] << 24) | (s[1] << 16) | (s[2] << 8) | s[3]
        self.head = bytearray()
        full = self.root + "/" + path
        if "/" in path:
            mkdirs(full.rsplit("/", 1)[0])
        if self.step:
            self.step("file")
        if self.guard:
            self.guard(self.left)
        self.f = open(full, "wb")
        if not self.left:
            self._close()

    def _close(self):
        self.f.close()
        self.f = None
        self.files += 1

    def finish(self):
        """The number of files written; TreeError if the image ended inside an entry."""
        if self.f is not None:
            self.f.close()
            self.f = None
        if not self.magic or self.left or self.head:
            raise TreeError("tree image ends inside an entry (truncated)")
        return self.files
