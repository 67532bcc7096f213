# Collecting readings from the devices on the hub's allow-list.
#
# One task per device connects, bonds (or re-encrypts with its stored
# bond), reads Device Information and battery, sets the device clock,
# subscribes, backfills stored records through RACP from the lowest record
# number not yet durable in the journal (hub/recset.py: gaps included, so
# a newer record arriving early hides nothing), starts ECG, and reconnects
# with a capped backoff. One dispatcher task takes every BLE event from the
# central's bounded FIFO and hands values to their device; parsing happens
# here, never in the BLE callback. The Store commits (hub/store.py: groups
# for notified values, at once for indicated ones, which the device has
# deleted) and only after a commit are the devices' record numbers
# remembered (Store.after_commit), so a power cut can never make the hub
# skip a stored record. A record number the hub already has is dropped and
# counted (duplicates): the backfill asks from the lowest gap upwards.
#
# docs/ble.md describes the layers; hub/kinds/ what each device kind needs
# (one file per kind: this module has no per-kind branches).
#
# One module: Device (one device's session: connect, bond, clock, backfill,
# values, silence) and Collector (the one dispatcher, scanning, pairing
# window, telemetry) are the two halves of one loop: the dispatcher hands
# every BLE event to its Device, a Device reports through its Collector's
# store and telemetry, and the record numbers are remembered for all devices
# at once after a commit. Neither runs without the other, so on a board a
# second module would add its name table and code objects to the heap and
# never be unloaded. What varies per device already lives apart (hub/kinds/,
# hub/profiles/, hub/recset.py).

import asyncio
import gc

from hub import alarms, kinds, profiles, reading, recset, state
from hub.ble import KEY_MISSING, PROP_READ, PROP_WRITE, PROP_WRITE_NR, BleError, addr_str, find_char, uuid_str, wait_ms
from hub.kinds import BATTERY_LEVEL, CURRENT_TIME, DIS_STRINGS, RACP, adv_services
from hub.profiles import ProfileError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

BACKOFF_MIN_MS = const(500)
BACKOFF_MAX_MS = const(60000)
RACP_TIMEOUT_MS = const(120000)
RESYNC_GAPS = const(4)  # this many gaps in a device's record numbers: ask it again while connected
SILENCE_CHECK_MS = const(1000)

# Hub telemetry codes (private partition 1024 of IEEE 11073-10101: MDC
# has no code for these hub-side events).
MDC_HUB_DEVICE_SILENT = const(1024 << 16 | 1)
MDC_HUB_DEVICE_CONNECTED = const(1024 << 16 | 2)
MDC_HUB_BOND_LOST = const(1024 << 16 | 4)
# A coincident time stamp: the device's clock at the hub's (boot, mono) and UTC
# (docs/reading.md, "Time"). val: CLOCK_FAULT (it has no valid time: never set,
# year 0), CLOCK_READ (dts = its clock, read over Current Time before the hub
# sets it) or CLOCK_WRITTEN (dts = the time the hub has just written to it).
MDC_HUB_DEVICE_CLOCK = const(1024 << 16 | 5)
CLOCK_FAULT = const(0)
CLOCK_READ = const(1)
CLOCK_WRITTEN = const(2)



def _puuid(uuid):
    # hub.ble gives 128-bit UUIDs as big-endian bytes; the profile registry takes their text
    return uuid if isinstance(uuid, int) else uuid_str(uuid)


class Device:
    def __init__(self, collector, addr, kind, name=""):
        self.k = kinds.get(kind)  # ValueError for an unknown kind
        self.c = collector
        self.addr = bytes(addr)
        self.kind = kind
        self.name = name
        self.backed = self.k.RECORDS is not None  # its stored records can be fetched again (RACP)
        self.conn = None
        self.handles = {}
        self.seen = asyncio.Event()
        self.gone = asyncio.Event()
        # record numbers accounted for: durable in the journal (persisted), and staged only
        self.recs = recset.load(self.addr, collector.state_dir) if self.backed else recset.RecSet()
        self.fresh = recset.RecSet()
        self.duplicates = 0  # records the device sent again that the hub has: dropped
        self._dup = None  # the last record dropped as a duplicate (its context goes too)
        self._gaps_after = 0  # gaps left open by the last report
        self.racp = None  # (event, [result]) while a RACP request is out
        self.hr = None  # HeartRateSummary, made on the first heart-rate value
        self.asking = None  # (characteristic, event, [answers], accept) while a control point request is out
        self.opts = {}
        self.info = None
        self.info_sent = False
        self.subscribed = False
        self.last_heard = 0
        self.silent_reported = False
        self.connects = 0
        self.disconnects = 0
        self.errors = 0
        self.bad_payloads = 0
        self.readings = 0
        self.backfilled = 0
        self.bond_losses = 0
        self.needs_pairing = False  # bond lost and the rebond policy waits for a pairing window
        self.last_error = None

    # ------------------------------------------------------------ the task
    async def run(self):
        backoff = BACKOFF_MIN_MS
        while True:
            # Nothing a session raises may end this task: a device whose task died would never be
            # heard again (a MemoryError under heap pressure once did that to a CGM).
            try:
                await self._session()
            except asyncio.CancelledError:
                await self._close()
                raise
            except Exception as e:  # noqa: BLE001 - counted and shown, then the device is retried
                self._failed(e)
            try:
                await self._close()
            except Exception as e:  # noqa: BLE001 - a link that will not close cleanly is gone all the same
                self._failed(e)
            if self.subscribed:
                backoff = BACKOFF_MIN_MS  # it had worked: retry soon
            self.subscribed = False
            # Capped backoff first (a device that advertises but fails must not be hammered),
            # then wait until it is heard advertising (or try anyway after a while).
            await asyncio.sleep_ms(backoff) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(backoff / 1000)
            backoff = min(backoff * 2, BACKOFF_MAX_MS)
            self.seen.clear()
            try:
                await wait_ms(self.seen.wait(), BACKOFF_MAX_MS)
            except asyncio.TimeoutError:
                pass

    def _failed(self, e):
        self.errors += 1
        known = isinstance(e, ValueError)  # every HubError (BleError, ProfileError...) and bad values
        self.last_error = str(e) if known else "%s: %s" % (type(e).__name__, e)
        self.c.log("%s %s: %s" % (self.kind, addr_str(self.addr), self.last_error))

    async def _session(self):
        c = self.c
        conn = await c.central.connect(self.addr)
        self.conn = conn
        self.gone.clear()
        c.by_conn[conn.handle] = self
        self.connects += 1
        try:
            await conn.exchange_mtu(247)
        except BleError:
            pass  # 23 bytes will do, slowly
        svcs = await conn.discover()
        self.handles = {}
        for s in svcs:
            for ch in s.chars:
                self.handles[ch.handle] = ch.uuid
        if self.k.BOND or (c.bonds is not None and c.bonds.get(self.addr) is not None):
            try:
                res = await conn.pair(bond=True, mitm=False, lesc=True)
            except BleError as e:
                if e.reason != KEY_MISSING:
                    raise
                # The device lost our bond (reset, battery change), or an impostor
                # claims its address. Say so once; pair afresh at once ("auto", for
                # homes where nobody would open a window) or only inside a pairing
                # window ("window": a person confirms it is the patient's device).
                if not self.needs_pairing:
                    self.bond_losses += 1
                    c.telemetry(self.addr, MDC_HUB_BOND_LOST, self.bond_losses)
                if c.rebond != "auto" and not c.pairing_open():
                    self.needs_pairing = True
                    raise BleError("bond lost: open a pairing window to pair it again")
                self.needs_pairing = False
                await c.central.bond_delete(self.addr)
                res = await conn.pair(bond=True, mitm=False, lesc=True)
            if not res.get("encrypted"):
                raise BleError("link not encrypted after pairing")
        await self._read_info(conn, svcs)
        ch = find_char(svcs, BATTERY_LEVEL)
        if ch is not None:
            self.value(ch.handle, await conn.read(ch.handle))
        await self._set_clock(conn, svcs)
        prepare = getattr(self.k, "prepare", None)
        if prepare is not None:
            self.opts = await prepare(conn, svcs)
        epoch = self.opts.get(getattr(self.k, "NUMBERING", None))
        if epoch is not None and epoch != self.recs.epoch:
            # the device's record numbers count from something new (a new CGM session):
            # the numbers the hub has belong to the old one
            self.recs = recset.RecSet(epoch=epoch)
            self.fresh.clear()
            recset.save(self.recs, self.addr, self.c.state_dir)
        for uuid, mode in self.k.SUBSCRIBE:
            ch = find_char(svcs, uuid)
            if ch is not None and ch.cccd:
                profiles.load(_puuid(uuid))  # before the device may send (profiles.load says why)
                await conn.subscribe(ch.cccd, mode)
        self.subscribed = True
        self.last_heard = c.port.ticks_ms()
        self.silent_reported = False
        c.telemetry(self.addr, MDC_HUB_DEVICE_CONNECTED, self.connects)
        racp_ch = find_char(svcs, RACP) if self.backed else None
        if racp_ch is not None:
            await self._backfill(conn, racp_ch)
        start = getattr(self.k, "start", None)
        if start is not None:
            await start(self, conn, svcs)
        while not self.gone.is_set():
            try:
                await wait_ms(self.gone.wait(), SILENCE_CHECK_MS)
            except asyncio.TimeoutError:
                self._check_silence()
                if racp_ch is not None and self.gaps() >= RESYNC_GAPS and self.gaps() > self._gaps_after:
                    # Numbers the hub has not seen (a CGM's time offsets are sparse; a
                    # glucose record may have been missed): the device says which exist.
                    # (Not again while a report could not close them: no loop of reports.)
                    await self._backfill(conn, racp_ch)

    async def _read_info(self, conn, svcs):
        parts = []
        for uuid in DIS_STRINGS:
            ch = find_char(svcs, uuid, 0x180A)
            if ch is not None:
                try:
                    parts.append(profiles.parse(uuid, await conn.read(ch.handle))["text"].strip())
                except (BleError, ProfileError, KeyError):
                    pass
        info = " ".join(p for p in parts if p)
        if info != self.info:
            self.info = info or None
            self.info_sent = False

    async def _set_clock(self, conn, svcs):
        """Read the device clock (a coincident time stamp: the receiver corrects the
        times of the records this clock stamped), then set it to the hub's UTC and
        say so (a second stamp: the clock the records made from now on carry)."""
        ch = find_char(svcs, CURRENT_TIME)
        if ch is None:
            return
        from hub.profiles import timefmt
        if ch.props & PROP_READ:
            try:
                f = timefmt.parse_current_time(await conn.read(ch.handle))
                secs = timefmt.epoch(f["time"])
                if secs is None:
                    self._clock_stamp(CLOCK_FAULT, None, 0)
                else:
                    self._clock_stamp(CLOCK_READ, secs, f["frac256"] * 1000 >> 8)
            except (BleError, ProfileError) as e:
                self.c.log("%s %s: clock not read: %s" % (self.kind, addr_str(self.addr), e))
        utc = self.c.port.utc_ms()
        if utc is None or not ch.props & (PROP_WRITE | PROP_WRITE_NR):
            return
        frac = (utc % 1000) * 256 // 1000
        try:
            await conn.write(ch.handle, timefmt.current_time_at(utc // 1000, frac), response=bool(ch.props & PROP_WRITE))
        except BleError as e:
            # Not fatal: the receiver corrects device times from the stamp read above.
            self.c.log("%s %s: clock not set: %s" % (self.kind, addr_str(self.addr), e))
            return
        self._clock_stamp(CLOCK_WRITTEN, utc // 1000, frac * 1000 >> 8)

    def _clock_stamp(self, state, secs, ms):
        p = {reading.MDC: MDC_HUB_DEVICE_CLOCK, reading.VAL: state}
        if secs is not None:
            p[reading.DTS] = secs
            p[reading.CTX] = {"ms": ms}
        self.c.store.put(p, self.addr, reading.PRIO_TELEMETRY)

    # ------------------------------------------------------------ record numbers
    def _top(self):
        a, b = self.recs.top(), self.fresh.top()
        return a if b is None else b if a is None else max(a, b)

    def _has(self, n):
        return self.recs.has(n) or self.fresh.has(n)

    def gaps(self):
        """Gaps in the record numbers accounted for (durable and staged together)."""
        if not self.fresh.ranges and self.fresh.low is None:
            return self.recs.gaps()
        both = recset.RecSet(self.recs.low, list(self.recs.ranges))
        both.merge(self.fresh)
        return both.gaps()

    def lowest_missing(self):
        return self.recs.lowest_missing()

    def remember(self):
        """After a commit: the record numbers staged so far are durable now."""
        f = self.fresh
        if f.low is None and not f.ranges and not f.given_up:
            return
        self.recs.merge(f)
        f.clear()
        recset.save(self.recs, self.addr, self.c.state_dir)

    async def _backfill(self, conn, ch):
        """Ask for every stored record from the lowest number the journal lacks; wait until
        the device says done. A completed report also tells which numbers do not exist
        (it sent every record it has from there): they are settled, after the commit."""
        from hub.profiles import racp
        low = self.recs.lowest_missing()
        top = self._top()
        if low is None or (top is not None and top >= (low | 0xFFFF) + 1):
            # nothing known yet; or the numbers from low wrapped past 0xFFFF, and a device
            # compares its 16-bit numbers: only "all" is sure to include every one
            req, low = racp.report_all(), None
        else:
            req = racp.report_from(low & 0xFFFF)
        ev = asyncio.Event()
        self.racp = (ev, [], [top])  # [2][0]: the highest record number seen during the report
        dropped = self.c.central.events.dropped
        await conn.write(ch.handle, req, response=True)
        try:
            await wait_ms(ev.wait(), RACP_TIMEOUT_MS)
        except asyncio.TimeoutError:
            raise BleError("RACP report timed out")
        res, high = self.racp[1], self.racp[2][0]
        self.racp = None
        done = res and res[-1][1] in (racp.SUCCESS, racp.NO_RECORDS)
        if done and high is not None and self.c.central.events.dropped == dropped:
            self.fresh.settle(low, high + 1)  # (low None: everything below)
        self.c.store.flush()  # durable, then remembered (Collector.remember)
        self._gaps_after = self.gaps()
        if not res:
            raise BleError("link lost during the RACP report")
        if not done:
            raise BleError("RACP report refused: %s" % racp.CODES.get(res[-1][1], res[-1][1]))

    async def ask(self, conn, ch, request, timeout_ms, accept=None):
        """Write a request to a control point and wait for its first accepted answer (an indication on it).

        Returns the answers (parsed); empty if the link was lost first. BleError on a timeout."""
        ev = asyncio.Event()
        self.asking = (ch.uuid, ev, [], accept)
        try:
            await conn.write(ch.handle, request, response=True)
            await wait_ms(ev.wait(), timeout_ms)
            return self.asking[2]
        except asyncio.TimeoutError:
            raise BleError("%s: no answer" % profiles.label(_puuid(ch.uuid)))
        finally:
            self.asking = None

    async def _close(self):
        # The device's state is reset first, so that a summary that cannot be stored or a
        # disconnect that fails leaves nothing waiting on a link that is gone.
        conn, self.conn = self.conn, None
        dropped = self.gone.is_set()
        self.gone.set()
        if self.racp is not None:
            self.racp[0].set()
        if self.asking is not None:
            self.asking[1].set()
        if conn is not None:
            self.c.by_conn.pop(conn.handle, None)
        try:
            self.flush_summary()
        finally:
            if conn is not None and not dropped:
                await conn.disconnect()
            self.c.release_codecs()

    def _check_silence(self):
        limit = self.k.SILENCE_S
        if not limit or not self.subscribed:
            return
        quiet = self.c.port.ticks_diff(self.c.port.ticks_ms(), self.last_heard)
        if quiet > limit * 1000 and not self.silent_reported:
            self.silent_reported = True
            self.c.telemetry(self.addr, MDC_HUB_DEVICE_SILENT, quiet // 1000, unit="s")

    # ---------------------------------------------- events (dispatcher task)
    def lost(self, reason):
        self.disconnects += 1
        self.gone.set()
        if self.racp is not None:
            self.racp[0].set()
        if self.asking is not None:
            self.asking[1].set()

    def value(self, handle, data, indicated=False):
        """A notification, indication or read value from this device. An indicated
        reading is committed before this returns: the device deleted it when the
        stack confirmed it."""
        uuid = self.handles.get(handle)
        if uuid is None:
            self.c.unknown_handles += 1
            return
        self.last_heard = self.c.port.ticks_ms()
        self.silent_reported = False
        try:
            if uuid == RACP:
                from hub.profiles import racp
                r = racp.result(profiles.parse(RACP, data))
                if self.racp is not None and r is not None and r[0] != racp.COUNT:
                    self.racp[1].append(r)
                    self.racp[0].set()
                return
            puuid = _puuid(uuid)
            if self.asking is not None and uuid == self.asking[0]:
                answer = profiles.parse(puuid, data)
                if self.asking[3] is None or self.asking[3](answer):
                    self.asking[2].append(answer)
                    self.asking[1].set()
                return
            partials = profiles.decode(puuid, data, **self.opts)  # control points: parsed (checked), no readings
        except ProfileError as e:
            self.bad_payloads += 1
            self.c.bad_payloads += 1
            self.last_error = str(e)
            return
        if uuid == self.k.SUMMARISE:
            partials = self._heart_rate(partials)
        last = len(partials) - 1
        took = None  # the record number taken from this value (its other readings share it)
        for i, p in enumerate(partials):
            rec = p.get(reading.REC)
            n = None
            if self.backed and rec is not None:
                if uuid == self.k.RECORDS:
                    n = self.recs.extend(rec, self._top())
                    if n != took and self._has(n):
                        if rec != self._dup:
                            self.duplicates += 1
                        self._dup = rec
                        continue
                    took = n
                    self._dup = None
                elif rec == self._dup:
                    continue  # the context of a record dropped as a duplicate
            if not self.info_sent and self.info:
                p[reading.INFO] = self.info
                self.info_sent = True
            prio = reading.PRIO_TELEMETRY if uuid == BATTERY_LEVEL \
                else alarms.classify(p, self.k.LIMITS, self.k.ALARM_FLAGS)
            # a stored record the device can send again through RACP may wait for a group commit;
            # an indicated one is committed with the value's last reading
            seq = self.c.store.put(p, self.addr, prio, self.backed and rec is not None, indicated and i == last)
            self.readings += 1
            if seq is None:
                n = None  # the journal refused it (hub/store.py): its number is not remembered, RACP asks again
            if n is not None:
                self.fresh.add(n)
                if self.racp is not None:
                    self.backfilled += 1
                    hi = self.racp[2]
                    if hi[0] is None or n > hi[0]:
                        hi[0] = n

    def _heart_rate(self, partials):
        """Keep a summary of the rate; store alarms, energy, RR and finished summaries."""
        out = []
        for p in partials:
            if p.get(reading.MDC) != 147842 or not isinstance(p.get(reading.VAL), int):
                if p.get(reading.MDC) != 147240 or self.c.keep_rr:
                    out.append(p)
                continue
            if alarms.classify(p, self.k.LIMITS, self.k.ALARM_FLAGS) == reading.PRIO_ALARM:
                out.append(p)
            if self.hr is None:
                from hub.summary import HeartRateSummary
                self.hr = HeartRateSummary()
            utc = self.c.port.utc_ms()
            done = self.hr.add(p[reading.VAL], self.c.port.ticks_ms(), None if utc is None else utc // 1000)
            if done is not None:
                out.append(done)
        return out

    def flush_summary(self):
        if self.hr is not None:
            done = self.hr.flush()
            if done is not None:
                self.c.store.put(done, self.addr, reading.PRIO_ROUTINE)

    def stats(self):
        top = self.recs.top()
        return {"addr": addr_str(self.addr), "kind": self.kind, "connected": self.conn is not None,
                "subscribed": self.subscribed, "readings": self.readings, "backfilled": self.backfilled,
                "last_rec": -1 if top is None else top, "lowest_missing": self.recs.lowest_missing(),
                "gaps": self.recs.gaps(), "duplicates": self.duplicates, "given_up": self.recs.given_up,
                "connects": self.connects, "disconnects": self.disconnects,
                "errors": self.errors, "bad_payloads": self.bad_payloads, "bond_losses": self.bond_losses,
                "needs_pairing": self.needs_pairing, "last_error": self.last_error,
                "mtu": None if self.conn is None else self.conn.mtu}


class Collector:
    def __init__(self, central, store, port, devices=(), bonds=None, log=print, state_dir=state.DIR):
        self.central = central
        self.store = store
        self.state_dir = state_dir  # where each device's record set is kept (hub/recset.py)
        store.after_commit.append(self.remember)
        self.port = port
        self.bonds = bonds
        self.log = log
        self.devices = {}
        self.by_conn = {}
        self.unknown_handles = 0
        self.bad_payloads = 0
        self.ignored_adv = 0
        self.memory_errors = 0  # BLE events the heap had no room to handle (status: ble.memory_errors)
        self.pairing_until = None
        self.rebond = "auto"  # after a lost bond: "auto" pairs again at once, "window" only in a pairing window
        self.keep_rr = False  # heart-rate RR intervals stored (for HRV): config "keep_rr"; off, ECG carries the beats
        self.on_pair = None  # called with (addr, kind) when the pairing window adds a device
        self._tasks = []
        for d in devices:
            self.add(d["addr"], d["kind"], d.get("name", ""))

    def add(self, addr, kind, name=""):
        d = Device(self, addr, kind, name)
        self.devices[d.addr] = d
        if self._tasks:
            self._tasks.append(asyncio.create_task(d.run()))
        return d

    def release_codecs(self):
        """Unload the profile codecs that no connected device needs (profiles.keep): called as a
        device's session ends. A connected device keeps its kind's and what every connection reads."""
        live = [d for d in self.devices.values() if d.conn is not None]
        uuids = [_puuid(u) for d in live for u, _ in d.k.SUBSCRIBE]
        profiles.keep(uuids + [BATTERY_LEVEL, DIS_STRINGS[0]] if live else uuids)

    def open_pairing(self, seconds):
        """Accept unknown devices advertising a supported health service for this long."""
        self.pairing_until = self.port.ticks_ms() + seconds * 1000

    def pairing_open(self):
        """Whether a pairing window is open now (open_pairing); a Device asks it
        before pairing afresh with a device that lost its bond."""
        if self.pairing_until is None:
            return False
        if self.port.ticks_diff(self.pairing_until, self.port.ticks_ms()) <= 0:
            self.pairing_until = None
            return False
        return True

    def telemetry(self, addr, mdc, val, unit=None):
        p = {reading.MDC: mdc, reading.VAL: val}
        if unit:
            p[reading.UNIT] = unit
        self.store.put(p, addr, reading.PRIO_TELEMETRY)

    def remember(self):
        """After a commit (Store.after_commit): the record numbers staged so far are durable now."""
        for d in self.devices.values():
            d.remember()

    async def _dispatch(self):
        fifo = self.central.events
        while True:
            ev = await fifo.get()
            try:
                self._event(ev)
            except MemoryError as e:  # a reading lost to the heap: counted and shown, not only logged
                self.memory_errors += 1
                self.log("ble event %r: MemoryError: %s" % (ev[0], e))
                gc.collect()
            except Exception as e:  # noqa: BLE001 - one bad event must not stop collection
                self.log("ble event %r: %s" % (ev[0], e))

    def _event(self, ev):
        k = ev[0]
        if k == "notify" or k == "indicate":
            d = self.by_conn.get(ev[1])
            if d is None:
                self.unknown_handles += 1
            else:
                d.value(ev[2], ev[3], k == "indicate")
        elif k == "adv":
            addr = bytes(ev[1])
            d = self.devices.get(addr)
            if d is not None:
                d.seen.set()
            elif self.pairing_open():
                kind = kinds.for_services(adv_services(ev[3]) + adv_services(ev[4]))
                if kind is not None:
                    self.add(addr, kind).seen.set()
                    if self.on_pair:
                        self.on_pair(addr, kind)
                else:
                    self.ignored_adv += 1
            else:
                self.ignored_adv += 1
        elif k == "disc":
            d = self.by_conn.pop(ev[1], None)
            if d is not None:
                d.lost(ev[2])

    async def _scan_task(self):
        scanning = None
        while True:
            want = self.pairing_open() or any(d.conn is None for d in self.devices.values())
            if want != scanning:
                try:
                    await self.central.scan(want)
                    scanning = want
                except BleError as e:
                    self.log("scan: %s" % e)
            await asyncio.sleep(1)

    async def run(self):
        self._tasks = [asyncio.create_task(self._dispatch()), asyncio.create_task(self._scan_task())]
        for d in list(self.devices.values()):
            self._tasks.append(asyncio.create_task(d.run()))
        await self._tasks[0]

    def stats(self):
        return {"fifo": self.central.events.stats(), "unknown_handles": self.unknown_handles,
                "central": self.central.stats() if hasattr(self.central, "stats") else {},
                "bad_payloads": self.bad_payloads, "ignored_adv": self.ignored_adv,
                "memory_errors": self.memory_errors, "devices": [d.stats() for d in self.devices.values()]}
