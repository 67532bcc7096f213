# The flash side of an update over the air (docs/ota.md; the service that
# drives it is hub/ota.py): the pointer boot.py follows and its trial
# states, the stage of a release being fetched (one file per chunk), and
# apply(), which verifies the staged release into the idle slot and
# switches to it as a trial. Each small file that decides anything is
# written as a new file and renamed over the old one (atomic on littlefs);
# tests/test_ota_powercut.py cuts the power after every flash operation.
#
#   /fw/active        the pointer: "a" | "b" (confirmed); "b?a" (trial of
#                     b, old a, not booted yet); "b!a" (trial booted, not
#                     confirmed); "a~b" (a, after b's trial was rolled
#                     back); old "-" is the tree at the flash root
#   /fw/a, /fw/b      the slots, each a whole tree
#   /fw/ota/offer     the staged release's header and the chunk size
#   /fw/ota/<i>       image chunk i (written as <i>.t, renamed): the
#                     listing is what the hub has, after any power cut
#   /fw/ota/spent     bytes fetched over cellular for this release
#   /fw/ota/failed    this release was rolled back: never tried again

import os
from hub.errors import HubError

FW = "/fw"


class OtaError(HubError):
    """An update message or state the hub refuses; code as in REFUSALS."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def release_module():
    # hub.release brings Ed25519 and SHA-512 (about 16 KB of heap): loaded only
    # once an update is offered or staged, never by a hub that has none
    from hub import release
    return release


def nostep(name):
    pass


# ------------------------------------------------------------ the pointer

def read_pointer(fw=FW):
    try:
        with open(fw + "/active") as f:
            return f.read().strip()
    except OSError:
        return ""


def parse_pointer(t):
    """(slot that runs when no trial does, or "-" for the root tree; the trial's
    slot, or the slot rolled back, or None; "?" | "!" | "~" | "") of a pointer text."""
    if t in ("a", "b"):
        return t, None, ""
    if len(t) == 3 and t[0] in "ab-" and t[1] in "?!~" and t[2] in "ab-" and t[0] != t[2]:
        if t[1] == "~":
            return t[0], t[2], "~"
        if t[0] != "-":
            return t[2], t[0], t[1]
    return "-", None, ""


def write_pointer(text, fw=FW, step=nostep):
    """Set the pointer in one atomic step ("-": no pointer, the root tree)."""
    step("pointer")
    if text == "-":
        try:
            os.remove(fw + "/active")
        except OSError:
            pass
        return
    _put(fw + "/active", text.encode())


def _put(path, data):
    with open(path + ".new", "wb") as f:
        f.write(data)
    os.rename(path + ".new", path)


def _get(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _isdir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def remove_tree(path, step=nostep):
    """Delete path and everything under it (each removal a step)."""
    if not _isdir(path):
        try:
            os.stat(path)
        except OSError:
            return
        step("remove")
        os.remove(path)
        return
    for name in os.listdir(path):
        remove_tree(path + "/" + name, step)
    step("remove")
    os.rmdir(path)


# ------------------------------------------------------------ the stage

class Stage:
    """The release being fetched, on flash under fw/ota (see the header)."""

    def __init__(self, fw=FW, step=nostep):
        self.fw = fw
        self.dir = fw + "/ota"
        self.step = step
        self.head = None
        self.cs = 0
        self.n = 0
        self.size = 0
        self.have = None
        self.count = 0
        self.manifest = None
        self._found = ()

    def load(self):
        """The stored offer's raw header (or None); fills have/count from the listing."""
        raw = _get(self.dir + "/offer")
        if raw is None or len(raw) < 3:
            self.head = None
            return None
        self._set(raw[2:], (raw[0] << 8) | raw[1])
        self._found = [int(name) for name in os.listdir(self.dir) if name.isdigit()]
        return self.head  # sized(manifest) once it is checked counts the chunks found

    def _set(self, head, cs):
        self.head = head
        self.cs = cs
        self.size = 0
        self.n = 0
        self.have = bytearray(0)
        self.count = 0

    def start(self, head, cs, manifest):
        """Stage a new offer (head: the release's header bytes), dropping any other."""
        self.clear()
        for d in (self.fw, self.dir):  # a hub set up by copying files has no /fw yet
            if not _isdir(d):
                os.mkdir(d)
        _put(self.dir + "/offer", bytes((cs >> 8, cs & 0xFF)) + head)
        self._set(head, cs)
        self.sized(manifest)

    def sized(self, manifest):
        self.manifest = manifest
        self.size = manifest["size"]
        self.n = (self.size + self.cs - 1) // self.cs
        if len(self.have) != self.n:
            self.have = bytearray(self.n)
            self.count = 0
        for i in self._found:
            if i < self.n and not self.have[i]:
                self.have[i] = 1
                self.count += 1
        self._found = ()

    def chunk_len(self, i):
        return min(self.cs, self.size - i * self.cs)

    def put(self, i, data):
        """Store chunk i (True if new). OtaError if i or its length is wrong."""
        if not isinstance(i, int) or not 0 <= i < self.n or len(data) != self.chunk_len(i):
            raise OtaError("chunk", "chunk %r of %d bytes does not fit a release of %d chunks" % (i, len(data), self.n))
        if self.have[i]:
            return False
        p = self.dir + "/%d" % i
        self.step("chunk")
        with open(p + ".t", "wb") as f:
            f.write(data)
        os.rename(p + ".t", p)
        self.have[i] = 1
        self.count += 1
        return True

    def missing(self, k, skip=None):
        """Up to k chunk numbers not on flash (and not in skip)."""
        out = []
        for i in range(self.n):
            if not self.have[i] and (skip is None or i not in skip):
                out.append(i)
                if len(out) >= k:
                    break
        return out

    def complete(self):
        return self.head is not None and self.n > 0 and self.count == self.n

    def mark(self, name, value):
        self.step("mark")
        _put(self.dir + "/" + name, value.encode())

    def marked(self, name):
        v = _get(self.dir + "/" + name)
        return None if v is None else v.decode()

    def clear(self):
        try:  # the offer first: a cut in the middle leaves no stage, only files start() sweeps
            self.step("remove")
            os.remove(self.dir + "/offer")
        except OSError:
            pass
        remove_tree(self.dir, self.step)
        self.head = None
        self.n = self.count = 0
        self.have = bytearray(0)
        self.manifest = None

    def reader(self):
        return _Reader(self)


class _Reader:
    """The staged release as one stream (header, then the chunk files in order),
    for release.verify_stream: nothing but one read buffer in the heap."""

    def __init__(self, stage):
        self.s = stage
        self.pre = stage.head
        self.i = 0
        self.f = None

    def readinto(self, buf):
        if self.pre:
            k = min(len(buf), len(self.pre))
            buf[:k] = self.pre[:k]
            self.pre = self.pre[k:]
            return k
        while True:
            if self.f is None:
                if self.i >= self.s.n:
                    return 0
                self.f = open(self.s.dir + "/%d" % self.i, "rb")
                self.i += 1
            k = self.f.readinto(buf)
            if k:
                return k
            self.f.close()
            self.f = None

    def read(self, n):
        b = bytearray(n)
        k = self.readinto(b)
        return bytes(b[:k])


# ------------------------------------------------------------ apply

def idle_slot(fw=FW):
    """The slot a tree release is applied into: the one the running tree is not in."""
    return "b" if parse_pointer(read_pointer(fw))[0] == "a" else "a"


def apply(stage, key, board, running, fw=FW, step=nostep, guard=None):
    """Verify the staged release into the idle slot and point boot.py at it as a
    trial. A power cut anywhere before the pointer's rename leaves the running
    tree in charge (the idle slot is named by nothing); apply() again from the
    start finishes the job. Returns the manifest; ReleaseError/OtaError refuse.
    guard(nbytes), before each file is written, may stop it (OtaError "room")."""
    from hub.otatree import Unpacker, TreeError
    cur, trial, _ = parse_pointer(read_pointer(fw))
    if trial is not None:
        raise OtaError("failed", "the pointer is %r: a trial first ends (start())" % read_pointer(fw))
    slot = idle_slot(fw)
    path = fw + "/" + slot
    remove_tree(path, step)
    step("mkdir")
    os.mkdir(path)
    unp = Unpacker(path, step, guard)
    try:
        m = release_module().verify_stream(stage.reader(), key, board, running, unp.feed, 1024, "tree")
        unp.finish()
    except TreeError as e:
        raise OtaError("tree", str(e))
    finally:
        if unp.f is not None:
            unp.f.close()
    write_pointer(slot + "?" + cur, fw, step)
    return m


def confirm(fw=FW, step=nostep):
    """The running trial is good: make its slot the confirmed one. True if there was a trial."""
    _, trial, state = parse_pointer(read_pointer(fw))
    if trial is None or state != "!":
        return False
    write_pointer(trial, fw, step)
    return True
