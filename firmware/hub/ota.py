# Over-the-air updates on the hub (docs/ota.md): a signed "tree" release
# staged chunk by chunk on flash as it arrives over the uplink, applied
# into the idle slot folder, switched to as a trial, then confirmed by the
# running hub or rolled back by boot.py.
#
# Flash (each small file that decides anything is written as a new file
# and renamed over the old one, which littlefs makes atomic):
#   /fw/active        the pointer boot.py follows:
#                     "a" | "b"  that slot, confirmed;
#                     "b?a"      trial of b (old: a), not booted yet;
#                     "b!a"      trial of b booted, not confirmed;
#                     old "-" is the tree at the flash root (no slot yet).
#                     "a~b"      a, after the trial of b was rolled back;
#                     boot.py turns "?" into "!" and boots the trial; it
#                     turns "b!a" into "a~b" (a trial that reset or lost
#                     power before confirming is rolled back), and the
#                     hub, once it has noted the failure, into "a".
#   /fw/a, /fw/b      the slots, each a whole tree
#   /fw/ota/offer     the staged release's header (magic, manifest,
#                     signature) and the chunk size
#   /fw/ota/<i>       image chunk i, written as <i>.t and renamed: the
#                     listing is what the hub has (resumable after a cut)
#   /fw/ota/spent     bytes fetched over cellular for this release
#   /fw/ota/failed    that version was rolled back: never tried again
#
# Policy: chunks are asked for only while no alarm is unsent or in flight
# (the uplink asks this module only after its alarm stream is empty), a
# few at a time (`window`), within `budget_bytes` per release on a
# cellular bearer; the release is applied only with no alarm unsent and a
# backlog of at most `max_backlog` records. Each step is a telemetry
# reading (MDC_HUB_OTA_*, value: the release's version as one integer).

import os

from hub import cbor

FW = "/fw"
MAX_CHUNK = 4096

# Hub telemetry codes (private partition 1024, beside clock's 48/49):
MDC_HUB_OTA_OFFER = 1024 << 16 | 64       # a release offered and accepted
MDC_HUB_OTA_REFUSED = 1024 << 16 | 65     # val: index of the code in REFUSALS
MDC_HUB_OTA_FETCHED = 1024 << 16 | 66     # every chunk on flash
MDC_HUB_OTA_SWITCHED = 1024 << 16 | 67    # verified, slot written, pointer set to the trial
MDC_HUB_OTA_TRIAL = 1024 << 16 | 68       # running the trial
MDC_HUB_OTA_CONFIRMED = 1024 << 16 | 69   # trial confirmed (broker reached, status sent)
MDC_HUB_OTA_ROLLED_BACK = 1024 << 16 | 70  # the trial did not confirm: back on the old slot
REFUSALS = ("format", "truncated", "signature", "manifest", "board", "kind", "downgrade", "same",
            "too-old", "too-long", "hash", "key", "tree", "chunk", "failed")


class OtaError(ValueError):
    """An update message or state the hub refuses; code as in REFUSALS."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _rel():
    # hub.release brings Ed25519 and SHA-512 (about 16 KB of heap): loaded only
    # once an update is offered or staged, never by a hub that has none
    from hub import release
    return release


def _nostep(name):
    pass


def version_int(v):
    """(major, minor, patch) -> one integer for a telemetry reading."""
    return (v[0] << 32) | (v[1] << 16) | v[2]


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


def write_pointer(text, fw=FW, step=_nostep):
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


def remove_tree(path, step=_nostep):
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

    def __init__(self, fw=FW, step=_nostep):
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

def apply(stage, key, board, running, fw=FW, step=_nostep):
    """Verify the staged release into the idle slot and point boot.py at it as a
    trial. A power cut anywhere before the pointer's rename leaves the running
    tree in charge (the idle slot is named by nothing); apply() again from the
    start finishes the job. Returns the manifest; ReleaseError/OtaError refuse."""
    from hub.otatree import Unpacker, TreeError
    cur, trial, _ = parse_pointer(read_pointer(fw))
    if trial is not None:
        raise OtaError("failed", "the pointer is %r: a trial first ends (start())" % read_pointer(fw))
    slot = "b" if cur == "a" else "a"
    path = fw + "/" + slot
    remove_tree(path, step)
    step("mkdir")
    os.mkdir(path)
    unp = Unpacker(path, step)
    try:
        m = _rel().verify_stream(stage.reader(), key, board, running, unp.feed, 1024, "tree")
        unp.finish()
    except TreeError as e:
        raise OtaError("tree", str(e))
    finally:
        if unp.f is not None:
            unp.f.close()
    write_pointer(slot + "?" + cur, fw, step)
    return m


def confirm(fw=FW, step=_nostep):
    """The running trial is good: make its slot the confirmed one. True if there was a trial."""
    _, trial, state = parse_pointer(read_pointer(fw))
    if trial is None or state != "!":
        return False
    write_pointer(trial, fw, step)
    return True


# ------------------------------------------------------------ the service

class Ota:
    """The hub's side of an update: on_message() takes what `samband ota` sends
    (samband/<hub>/ota), wants() says whether the status should go now with a
    request, status() is the "ota" part of the hub's status message, due() and
    run_apply() apply, reported() confirms a trial. cfg (hub.json "ota"):
    window (2), retry_ms (5000), budget_bytes (0: no cellular budget),
    max_backlog (50), trial_s (300)."""

    def __init__(self, board, running, key, cfg=None, telemetry=None, log=None, fw=FW, step=_nostep):
        cfg = cfg or {}
        self.board = board
        self.running = running
        self.key = key
        self.window = cfg.get("window", 2)
        self.retry_ms = cfg.get("retry_ms", 5000)
        self.budget = cfg.get("budget_bytes", 0)
        self.max_backlog = cfg.get("max_backlog", 50)
        self.trial_ms = cfg.get("trial_s", 300) * 1000
        self.tel = telemetry
        self.log = log or _nostep
        self.fw = fw
        self.stage = Stage(fw, step)
        self.state = "none"
        self.refused = None
        self.asked = {}  # chunk -> ticks asked
        self.spent = 0
        self.counters = {"chunks": 0, "dup_chunks": 0, "bad": 0}
        self._due_status = False
        self.trial = False
        self._refused_head = None
        self._req = []

    def _t(self, mdc, val):
        if self.tel is not None:
            self.tel(mdc, val)

    def _version(self):
        m = self.stage.manifest
        return version_int(m["version"]) if m else 0

    def start(self):
        """At boot: find out where an update stood (resume, trial, rolled back, done)."""
        cur, trial, state = parse_pointer(read_pointer(self.fw))
        if state == "!":
            self.trial = True
            self.state = "trial"
        if self.stage.load() is None:
            remove_tree(self.stage.dir, self.stage.step)  # what a cut clear() left
            if self.trial:
                self._t(MDC_HUB_OTA_TRIAL, 0)
            if state == "~":
                self._t(MDC_HUB_OTA_ROLLED_BACK, 0)
                write_pointer(cur, self.fw, self.stage.step)
            return self.state
        try:
            m = self._check(self.stage.head, ignore_same=True)
        except ValueError as e:  # ReleaseError
            self._refuse(getattr(e, "code", "format"), str(e))
            self.stage.clear()
            return self.state
        self.stage.sized(m)
        self.spent = int(self.stage.marked("spent") or 0)
        if self.trial:
            self._t(MDC_HUB_OTA_TRIAL, self._version())
        elif state == "~":
            # boot.py rolled the trial back: never this release again, then note it
            self._t(MDC_HUB_OTA_ROLLED_BACK, self._version())
            self._fail()
            write_pointer(cur, self.fw, self.stage.step)
        elif self.stage.marked("failed") is not None:
            self.state = "failed"
        elif m["version"] <= _rel().parse_version(self.running):
            self.stage.clear()  # confirmed (the clean-up was cut short), or nothing newer
            self.state = "done" if m["v"] == self.running else "none"
        else:
            self.state = "apply" if self.stage.complete() else "fetch"
        return self.state

    def _fail(self):
        self.state = "failed"
        for i in range(self.stage.n):
            try:
                os.remove(self.stage.dir + "/%d" % i)
            except OSError:
                pass
        self.stage.mark("failed", self.stage.manifest["v"] if self.stage.manifest else "?")
        self.log("ota: release rolled back; it will not be tried again")

    def _check(self, head, ignore_same=False):
        release = _rel()
        man, sig, _ = release.split_header(head)
        try:
            m = release.check_manifest(man, sig, self.key, self.board, self.running, "tree")
        except release.ReleaseError as e:
            if not (ignore_same and e.code in ("same", "downgrade")):
                raise
            m = release.parse_manifest(man)  # the running or an older one: only for the state
        return m

    def _refuse(self, code, text, final=True):
        # final: the release itself is refused (an offer, its image); otherwise one
        # message was bad (a chunk, junk) and the fetch goes on
        self.refused = code
        if final:
            self.state = "refused"
        self.counters["bad"] += 1
        self.log("ota: refused: " + text)
        self._t(MDC_HUB_OTA_REFUSED, REFUSALS.index(code) if code in REFUSALS else len(REFUSALS))
        self._due_status = True

    def on_message(self, payload):
        """One message from samband/<hub>/ota; never raises (a bad one is counted)."""
        offer = False
        try:
            msg = cbor.loads(bytes(payload))
            if not isinstance(msg, dict):
                raise OtaError("format", "update message is not a map")
            if "c" in msg:
                self._chunk(msg.get("c"), msg.get("d"))
            elif "o" in msg:
                offer = True
                self._offer(msg.get("o"), msg.get("cs"))
            elif msg.get("x") == 1:
                self._stop()
        except (ValueError, TypeError, KeyError, IndexError) as e:  # OtaError, ReleaseError: a code
            self._refuse(getattr(e, "code", "format"), "update message: %s" % e, offer)
        except OSError as e:  # the flash (full?): said in the status, the message is asked for again
            self.counters["bad"] += 1
            self.refused = "flash"
            self.log("ota: flash: %s" % e)

    def _offer(self, head, cs):
        if not isinstance(head, bytes) or not isinstance(cs, int) or not 0 < cs <= MAX_CHUNK:
            raise OtaError("format", "an offer needs o (bytes) and cs (1..%d)" % MAX_CHUNK)
        if self.trial or self.state == "apply":
            return  # finish what is under way first
        if self.stage.head == head or self._refused_head == head:
            return  # the same offer again (retained, or after a reconnect)
        self._refused_head = head
        try:
            m = self._check(head)
        except ValueError as e:
            if getattr(e, "code", None) != "same":
                raise
            self.state = "done"  # it runs this release already (the offer is still retained)
            self._due_status = True
            return
        self._refused_head = None
        self.stage.start(head, cs, m)
        self.refused = None
        self.asked = {}
        self.spent = 0
        self.state = "fetch"
        self._t(MDC_HUB_OTA_OFFER, self._version())
        self._due_status = True

    def _chunk(self, i, data):
        if self.state != "fetch":
            return
        if not isinstance(data, bytes):
            raise OtaError("chunk", "chunk without data")
        if self.stage.put(i, data):
            self.counters["chunks"] += 1
            if self.cellular:
                self.spent += len(data)
                self.stage.mark("spent", str(self.spent))
        else:
            self.counters["dup_chunks"] += 1
        self.asked.pop(i, None)
        self._due_status = True
        if self.stage.complete():
            self.state = "apply"
            self._t(MDC_HUB_OTA_FETCHED, self._version())

    def _stop(self):
        if self.trial:
            return  # a switch already made is finished by confirm or roll-back
        self.stage.clear()
        self.state = "none"
        self.asked = {}
        self._due_status = True

    cellular = False  # set by the uplink from its routine bearer's kind

    def wants(self, now, ticks_diff):
        """True if the status should go now: it carries a request for chunks (the
        caller asks only while no alarm is unsent) or news of a step."""
        due = self._due_status
        self._due_status = False
        if self.state != "fetch":
            return due
        if self.cellular and self.budget and self.spent + self.stage.cs > self.budget:
            return due
        for i, t in list(self.asked.items()):
            if ticks_diff(now, t) >= self.retry_ms:
                del self.asked[i]  # lost (QoS 0, a bearer change): ask again
        if len(self.asked) >= self.window:
            return due
        new = self.stage.missing(self.window - len(self.asked), self.asked)
        for i in new:
            self.asked[i] = now
        self._req = new
        return due or bool(new)

    def status(self, request=False):
        """The "ota" entry of the status message (small: the status is capped at 256 bytes);
        request: the message that goes to the broker, which carries the chunks just asked
        for ("w"), once (a status for the console does not take them)."""
        s = {"st": self.state, "v": self.running}
        if self.stage.head is not None and self.stage.manifest:
            s["to"] = self.stage.manifest["v"]
            s["have"] = self.stage.count
            s["n"] = self.stage.n
        if request and self._req:
            s["w"] = self._req
            self._req = []
        if self.refused:
            s["r"] = self.refused
        if self.state == "fetch" and self.cellular and self.budget and self.spent + self.stage.cs > self.budget:
            s["st"] = "budget"
        return s

    def due(self, alarms, backlog):
        """Apply now? Only with every chunk, no alarm unsent and a small backlog."""
        return self.state == "apply" and alarms == 0 and backlog <= self.max_backlog

    def run_apply(self):
        """Verify and switch (the caller resets the hub afterwards); False if refused."""
        try:
            m = apply(self.stage, self.key, self.board, self.running, self.fw, self.stage.step)
        except ValueError as e:  # OtaError, ReleaseError
            self._refuse(getattr(e, "code", "format"), str(e))
            self.stage.clear()
            return False
        self._t(MDC_HUB_OTA_SWITCHED, version_int(m["version"]))
        self.state = "reboot"
        return True

    def reported(self):
        """The hub reached the broker and sent its status: confirm a running trial."""
        if not self.trial:
            return False
        confirm(self.fw, self.stage.step)
        self.trial = False
        self._t(MDC_HUB_OTA_CONFIRMED, self._version())
        if self.stage.head is not None:
            self.stage.clear()
        self.state = "done"
        self._due_status = True
        return True

    def trial_expired(self, elapsed_ms):
        """A trial still unconfirmed after trial_s: the caller resets (boot.py rolls back)."""
        return self.trial and elapsed_ms >= self.trial_ms


async def run(o, journal, port, started, commit=None, every_ms=1000):
    """The hub's update task: apply a fetched update when no alarm is unsent and the
    backlog is small, then reset into its trial; reset out of a trial that has not
    confirmed within trial_s (no broker), so that boot.py rolls it back."""
    import asyncio
    from hub.segment import ALARM
    from hub.ticks import ticks_diff
    while True:
        await asyncio.sleep_ms(every_ms)
        if o.trial_expired(ticks_diff(port.ticks_ms(), started)):
            o.log("ota: trial not confirmed in time (no broker?): reset, boot.py rolls it back")
            port.reset()
        if o.due(journal.count(ALARM), journal.count()):
            if commit is not None:
                commit()
            if o.run_apply():
                if commit is not None:
                    commit()  # the step's telemetry reading, on flash before the reset
                o.log("ota: switched to a trial of %s: reset" % o.stage.manifest["v"])
                port.reset()
