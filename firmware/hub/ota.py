# Over-the-air updates on the hub (docs/ota.md): the service between the
# uplink and the flash. It takes what `samband ota` sends (an offer, chunks,
# a stop), says in the hub's status which chunks it wants, applies a fetched
# release (hub/otaslot.py) when the hub may, and confirms a trial once the
# hub has booted, reached the broker and reported.
#
# Policy: chunks are asked for only while no alarm is unsent or in flight
# (the uplink asks this module only after its alarm stream is empty), a
# few at a time (`window`), within `budget_bytes` per release on a
# cellular bearer; the release is applied only with no alarm unsent and a
# backlog of at most `max_backlog` records. Each step is a telemetry
# reading (MDC_HUB_OTA_*, value: the release's version as one integer).
# The journal's room comes first: nothing is written (the offer, each chunk,
# each file of the tree applied) that would leave the flash less than the
# journal needs to grow to its capacity (`room`: Journal.may_take). Such a
# write is not made, counted (`no_room`) and said ("r": "room", one
# MDC_HUB_OTA_REFUSED reading per pause); the update waits and goes on once
# the flash has room again (another file removed), never a crash.
#
# One module: Ota is the state machine of one update (offered, fetching with
# a window and a budget, refused, fetched, applied as a trial, confirmed or
# rolled back) and its guard for the journal's room; each step reads and
# writes the same offer, chunk map and counters. What is not state is apart
# already (hub/otaslot.py applies, hub/otafw.py writes firmware slots,
# hub/otahttp.py fetches over HTTPS), and the module is loaded only while an
# update is under way (app.start_ota).

import os

from hub import cbor
from hub.otaslot import (FW, OtaError, Stage, apply, confirm, idle_slot, parse_pointer,  # noqa: F401
                         nostep, read_pointer, release_module, remove_tree, write_pointer)

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
            "too-old", "too-long", "hash", "key", "tree", "chunk", "failed", "http", "room")


def version_int(v):
    """(major, minor, patch) -> one integer for a telemetry reading."""
    return (v[0] << 32) | (v[1] << 16) | v[2]


# ------------------------------------------------------------ the service

class Ota:
    """The hub's side of an update: on_message() takes what `samband ota` sends
    (samband/<hub>/ota), wants() says whether the status should go now with a
    request, status() is the "ota" part of the hub's status message, due() and
    run_apply() apply, reported() confirms a trial. cfg (hub.json "ota"):
    window (2), retry_ms (5000), budget_bytes (0: no cellular budget),
    max_backlog (50), trial_s (300). slots: the port's firmware_slots() (an ESP32's OTA
    app partitions, hub/otafw.py) or None: then only tree releases are taken, and a
    firmware release is refused (kind), counted and said in words. room(nbytes) -> bool:
    whether a file that size may be written without taking the journal's flash (the
    hub's Journal.may_take; None: no journal to keep room for)."""

    def __init__(self, board, running, key, cfg=None, telemetry=None, log=None, fw=FW, step=nostep, slots=None,
                 room=None):
        cfg = cfg or {}
        self.board = board
        self.running = running
        self.key = key
        self.window = cfg.get("window", 2)
        self.retry_ms = cfg.get("retry_ms", 5000)
        self.budget = cfg.get("budget_bytes", 0)
        self.max_backlog = cfg.get("max_backlog", 50)
        self.trial_ms = cfg.get("trial_s", 300) * 1000
        self.http_timeout = cfg.get("http_timeout_s", 60)  # one Range request over HTTPS, at most
        self.tel = telemetry
        self.log = log or nostep
        self.fw = fw
        self.stage = Stage(fw, step)
        self.state = "none"
        self.refused = None
        self.asked = {}  # chunk -> ticks asked
        self.spent = 0
        self.counters = {"chunks": 0, "dup_chunks": 0, "bad": 0, "no_fw_slots": 0, "http_errors": 0, "no_room": 0}
        self.room = room
        self._tree = 0        # bytes (whole blocks) of the tree the apply under way has written
        self._apply_need = 0  # ... when it paused for room
        self.url = None  # the offer's https:// URL: chunks fetched with Range requests (hub/otahttp.py)
        self._due_status = False
        self.trial = False
        self._refused_head = None
        self._req = []
        self.slot = None  # the tree this boot runs: "a", "b" or "-" (the root); known after start()
        self.slots = slots
        self.fw_running = None  # the firmware image's own version (hub/otafw.py image_version)
        if slots is not None:
            from hub import otafw  # only on a board with OTA partitions
            self.fw_running = otafw.running_version(slots)
        # what each kind of release is compared with; a kind not here is refused
        self.runs = {"tree": running, "firmware": self.fw_running}

    def tell(self, mdc, val):
        """One OTA telemetry reading (hub.otafw reports the firmware slot's trial through it)."""
        if self.tel is not None:
            self.tel(mdc, val)

    def _drop(self, slot):
        """Remove a rolled-back tree: it is never run again, and its flash (a whole tree) is what
        the journal needs to keep taking readings (a flash filled with two trees and a stage left
        the journal no room: readings refused). After the pointer is written: a cut in between
        leaves an unreferenced folder that the next apply clears first."""
        if slot and slot not in ("-", self.slot):
            remove_tree(self.fw + "/" + slot, self.stage.step)

    def _fits(self, nbytes):
        """Whether nbytes may go on the flash now; if not, the update pauses: counted, said in
        the status ("r": "room") and, once per pause, as a telemetry reading."""
        if self.room is None or self.room(nbytes):
            if self.refused == "room":
                self.refused = None
                self._due_status = True
                self.log("ota: the flash has room again: going on")
            return True
        self.counters["no_room"] += 1
        if self.refused != "room":
            self.refused = "room"
            self._due_status = True
            self.log("ota: paused: %d bytes more would take the journal's flash" % nbytes)
            self.tell(MDC_HUB_OTA_REFUSED, REFUSALS.index("room"))
        return False

    def _guard(self, nbytes):
        # For the tree's Unpacker, before each file: OtaError("room") stops the apply. The
        # tree so far (its folder and each file in whole 4 KB blocks) is what a next try must have room for
        # at least, so that a flash still short is not written and emptied again each second.
        self._tree += (nbytes + MAX_CHUNK - 1) // MAX_CHUNK * MAX_CHUNK
        if not self._fits(nbytes):
            self._apply_need = self._tree
            raise OtaError("room", "no room for a file of %d bytes beside the journal" % nbytes)

    def offered_version(self):
        """The staged update's version as an integer (0: none staged), for telemetry."""
        m = self.stage.manifest
        return version_int(m["version"]) if m else 0

    def start(self):
        """At boot: find out where an update stood (resume, trial, rolled back, done)."""
        cur, trial, state = parse_pointer(read_pointer(self.fw))
        self.slot = trial if state == "!" else cur
        if state == "!":
            self.trial = True
            self.state = "trial"
        if self.stage.load() is None:
            remove_tree(self.stage.dir, self.stage.step)  # what a cut clear() left
            if self.trial:
                self.tell(MDC_HUB_OTA_TRIAL, 0)
            if state == "~":
                self.tell(MDC_HUB_OTA_ROLLED_BACK, 0)
                write_pointer(cur, self.fw, self.stage.step)
                self._drop(trial)
            return self.state
        try:
            m = self._check(self.stage.head, ignore_same=True)
        except ValueError as e:  # ReleaseError
            self._refuse(getattr(e, "code", "format"), str(e))
            self.stage.clear()
            return self.state
        self.stage.sized(m)
        self.spent = int(self.stage.marked("spent") or 0)
        self.url = self.stage.marked("url") or None
        if m["kind"] == "firmware":
            from hub import otafw  # where a firmware switch stood: trial, rolled back, not reset yet
            if otafw.boot_state(self) is not None:
                return self.state
        if self.trial:
            self.tell(MDC_HUB_OTA_TRIAL, self.offered_version())
        elif state == "~":
            # boot.py rolled the trial back: never this release again, then note it
            self.tell(MDC_HUB_OTA_ROLLED_BACK, self.offered_version())
            self.fail()
            write_pointer(cur, self.fw, self.stage.step)
            self._drop(trial)
        elif self.stage.marked("failed") is not None:
            self.state = "failed"
        elif m["version"] <= release_module().parse_version(self.runs.get(m["kind"]) or self.running):
            self.stage.clear()  # confirmed (the clean-up was cut short), or nothing newer
            self.state = "done" if m["v"] == self.runs.get(m["kind"]) else "none"
        else:
            self.state = "apply" if self.stage.complete() else "fetch"
        return self.state

    def fail(self):
        """Give the update up: its chunks removed (hub.otafw too, for a firmware that cannot start)."""
        self.state = "failed"
        for i in range(self.stage.n):
            try:
                os.remove(self.stage.dir + "/%d" % i)
            except OSError:
                pass
        self.stage.mark("failed", self.stage.manifest["v"] if self.stage.manifest else "?")
        self.log("ota: release rolled back; it will not be tried again")

    def _check(self, head, ignore_same=False):
        release = release_module()
        man, sig, _ = release.split_header(head)
        try:
            m = release.check_manifest(man, sig, self.key, self.board, self.runs)
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
        self.tell(MDC_HUB_OTA_REFUSED, REFUSALS.index(code) if code in REFUSALS else len(REFUSALS))
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
                self._offer(msg.get("o"), msg.get("cs"), msg.get("u"))
            elif msg.get("x") == 1:
                self._stop()
        except (ValueError, TypeError, KeyError, IndexError) as e:  # OtaError, ReleaseError: a code
            text = "update message: %s" % e
            if self.slots is None and getattr(e, "release_kind", None) == "firmware":
                self.counters["no_fw_slots"] += 1
                text += " (board %s has no OTA app partitions for a whole firmware)" % self.board
            self._refuse(getattr(e, "code", "format"), text, offer)
        except OSError as e:  # the flash (full?): said in the status, the message is asked for again
            self.counters["bad"] += 1
            self.refused = "flash"
            self.log("ota: flash: %s" % e)

    def _offer(self, head, cs, url=None):
        if not isinstance(head, bytes) or not isinstance(cs, int) or not 0 < cs <= MAX_CHUNK:
            raise OtaError("format", "an offer needs o (bytes) and cs (1..%d)" % MAX_CHUNK)
        if self.trial or self.state == "apply":
            return  # finish what is under way first
        if self.stage.head == head or self._refused_head == head:
            return  # the same offer again (retained, or after a reconnect)
        if url is not None:
            from hub import otahttp
            otahttp.parse_url(url)  # refused before anything is staged
        if not self._fits(len(head) + 2):
            return  # not remembered as refused: the offer's next delivery is taken when there is room
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
        self.url = url
        if url is not None:
            self.stage.mark("url", url)
        self.refused = None
        self.asked = {}
        self.spent = 0
        self.state = "fetch"
        self.tell(MDC_HUB_OTA_OFFER, self.offered_version())
        self._due_status = True

    def _chunk(self, i, data):
        if self.state != "fetch":
            return
        if not isinstance(data, bytes):
            raise OtaError("chunk", "chunk without data")
        self.store_chunk(i, data)

    def store_chunk(self, i, data):
        """Keep chunk i (from the broker or an HTTPS range: hub.otahttp), unless the journal needs the room."""
        new = isinstance(i, int) and 0 <= i < self.stage.n and not self.stage.have[i]
        if new and not self._fits(len(data)):
            self.asked.pop(i, None)  # asked for again once there is room
            return
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
            self.tell(MDC_HUB_OTA_FETCHED, self.offered_version())

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
        if self.state != "fetch" or self.url is not None:  # an https offer: the hub fetches (otahttp.step)
            return due
        if self.cellular and self.budget and self.spent + self.stage.cs > self.budget:
            return due
        for i, t in list(self.asked.items()):
            if ticks_diff(now, t) >= self.retry_ms:
                del self.asked[i]  # lost (QoS 0, a bearer change): ask again
        if len(self.asked) >= self.window:
            return due
        new = self.stage.missing(self.window - len(self.asked), self.asked)
        if new and not self._fits(self.stage.cs * len(new)):
            paused, self._due_status = self._due_status, False
            return due or paused  # paused: nothing asked for until there is room
        for i in new:
            self.asked[i] = now
        self._req = new
        return due or bool(new)

    def http_due(self, alarms):
        """Fetch over HTTPS now? Only for an https offer, with no alarm unsent, within the budget."""
        return self.state == "fetch" and self.url is not None and alarms == 0 and self.window_now() > 0 \
            and self._fits(self.stage.cs)

    def window_now(self):
        """Chunks that may still be fetched now (the window; the cellular budget)."""
        if self.cellular and self.budget:
            return min(self.window, (self.budget - self.spent) // self.stage.cs)
        return self.window

    def status(self, request=False):
        """The "ota" entry of the status message (small: the status is capped at 256 bytes);
        request: the message that goes to the broker, which carries the chunks just asked
        for ("w"), once (a status for the console does not take them)."""
        s = {"st": self.state, "v": self.running}
        if self.fw_running is not None:  # the firmware image's version (a board with OTA partitions)
            s["fv"] = self.fw_running
        if self.slot is not None:  # which tree runs, for the receiver's record of the fleet
            s["s"] = self.slot
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
        if self.state != "apply" or alarms or backlog > self.max_backlog:
            return False
        # after a pause for room: room for at least what the last try wrote and the file it
        # stopped at (the idle slot was emptied again)
        return self.refused != "room" or self._fits(self._apply_need)

    def run_apply(self):
        """Verify and switch (the caller resets the hub afterwards); False if refused or
        paused (no room beside the journal: tried again once due() sees room)."""
        self._tree = 2 * MAX_CHUNK  # the slot's folder: a littlefs metadata pair
        try:
            if self.stage.manifest["kind"] == "firmware":
                from hub import otafw
                if self.slots is None:
                    raise OtaError("kind", "a firmware release on a board without OTA partitions")
                m = otafw.apply(self.stage, self.key, self.board, self.fw_running, self.slots, self.stage.step)
            else:
                m = apply(self.stage, self.key, self.board, self.running, self.fw, self.stage.step, self._guard)
        except MemoryError:  # the apply starts again from the beginning next time: nothing is lost
            self.counters["nomem"] = self.counters.get("nomem", 0) + 1
            self.log("ota: out of heap while applying %s; trying again" % self.stage.manifest["v"])
            return False
        except OSError as e:  # no OTA partition after all (a firmware built without them)
            e = OtaError("kind", "no idle OTA partition: %s" % e)
            self._refuse(e.code, str(e))
            self.stage.clear()
            return False
        except ValueError as e:  # OtaError, ReleaseError
            if getattr(e, "code", None) == "room":  # paused (counted, said): the half-filled idle
                remove_tree(self.fw + "/" + idle_slot(self.fw), self.stage.step)  # slot goes, the stage stays
                return False
            self._refuse(getattr(e, "code", "format"), str(e))
            self.stage.clear()
            return False
        self.tell(MDC_HUB_OTA_SWITCHED, version_int(m["version"]))
        self.state = "reboot"
        return True

    def reported(self):
        """The hub reached the broker and sent its status: confirm a running trial."""
        if not self.trial:
            return False
        if self.stage.manifest is not None and self.stage.manifest["kind"] == "firmware":
            from hub import otafw
            otafw.confirm(self.stage, self.slots)  # the bootloader keeps this image
        else:
            confirm(self.fw, self.stage.step)
        self.trial = False
        self.tell(MDC_HUB_OTA_CONFIRMED, self.offered_version())
        if self.stage.head is not None:
            self.stage.clear()
        self.state = "done"
        self._due_status = True
        return True

    def trial_expired(self, elapsed_ms):
        """A trial still unconfirmed after trial_s: the caller resets (boot.py rolls back)."""
        return self.trial and elapsed_ms >= self.trial_ms


async def run(o, journal, port, started, commit=None, every_ms=1000, up=None):
    """The hub's update task: apply a fetched update when no alarm is unsent and the
    backlog is small, then reset into its trial; reset out of a trial that has not
    confirmed within trial_s (no broker), so that boot.py rolls it back. up: the hub's
    uplink, whose routine bearer fetches an offer that names a URL (hub/otahttp.py)."""
    import asyncio
    from hub.segment import ALARM
    from hub.ticks import ticks_diff
    while True:
        await asyncio.sleep_ms(every_ms)
        if o.trial_expired(ticks_diff(port.ticks_ms(), started)):
            o.log("ota: trial not confirmed in time (no broker?): reset, boot.py rolls it back")
            port.reset()
        if o.state == "reboot":
            o.log("ota: the firmware switch is made but the bootloader has not run: reset")
            if commit is not None:
                commit()
            port.reset()
        if up is not None and o.http_due(journal.count(ALARM)):
            from hub import otahttp  # only for an offer that names a URL
            await otahttp.pump(o, up, lambda: journal.count(ALARM))
        if o.due(journal.count(ALARM), journal.count()):
            if commit is not None:
                commit()
            if o.run_apply():
                if commit is not None:
                    commit()  # the step's telemetry reading, on flash before the reset
                o.log("ota: switched to a trial of %s: reset" % o.stage.manifest["v"])
                port.reset()

