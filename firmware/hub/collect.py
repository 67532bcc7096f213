# Collecting readings from the devices on the hub's allow-list.
#
# One task per device connects, bonds (or re-encrypts with its stored
# bond), reads Device Information and battery, sets the device clock,
# subscribes, backfills stored records through RACP from the last record
# number already durable in the journal, starts ECG, and reconnects with a
# capped backoff. One dispatcher task takes every BLE event from the
# central's bounded FIFO and hands values to their device; parsing happens
# here, never in the BLE callback. A commit task makes staged readings
# durable in groups and only then remembers the devices' record numbers,
# so a power cut can never make the hub skip a stored record.
#
# docs/ble.md describes the layers; hub/kinds.py what each device kind needs.

import asyncio

from hub import alarms, profiles, reading, state
from hub.ble import PROP_WRITE, PROP_WRITE_NR, BleError, addr_str, find_char, uuid_str, wait_ms
from hub.kinds import (BATTERY_LEVEL, CURRENT_TIME, DIS_STRINGS, KINDS, PMD_CP, PMD_DATA, RACP, SOCP,
                       adv_services, kind_for_services)
from hub.profiles import ProfileError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

BACKOFF_MIN_MS = const(500)
BACKOFF_MAX_MS = const(60000)
COMMIT_EVERY_MS = const(500)
RACP_TIMEOUT_MS = const(120000)
SILENCE_CHECK_MS = const(1000)

# Hub telemetry codes (private partition 1024 of IEEE 11073-10101: MDC
# has no code for these hub-side events).
MDC_HUB_DEVICE_SILENT = const(1024 << 16 | 1)
MDC_HUB_DEVICE_CONNECTED = const(1024 << 16 | 2)
MDC_HUB_BOND_LOST = const(1024 << 16 | 4)



def find_racp(spec):
    for uuid, _ in spec[2]:
        if uuid == RACP:
            return True
    return False


def _rec_key(addr):
    return "rec-" + "".join("%02x" % b for b in addr)


class Device:
    def __init__(self, collector, addr, kind, name=""):
        if kind not in KINDS:
            raise ValueError("unknown device kind %r" % kind)
        self.c = collector
        self.addr = bytes(addr)
        self.kind = kind
        self.name = name
        self.spec = KINDS[kind]
        self.backed = find_racp(self.spec)  # its stored records can be fetched again (RACP)
        self.conn = None
        self.handles = {}
        self.seen = asyncio.Event()
        self.gone = asyncio.Event()
        self.last_rec = state.read_int(_rec_key(self.addr), -1)  # durable in the journal
        self.staged_rec = self.last_rec  # staged (durable after the next commit)
        self.racp = None  # (event, [result]) while a RACP request is out
        self.hr = None  # HeartRateSummary, made on the first heart-rate value
        self.pmd = None
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
            try:
                await self._session()
            except (BleError, ProfileError, ValueError) as e:
                self.errors += 1
                self.last_error = str(e)
                self.c.log("%s %s: %s" % (self.kind, addr_str(self.addr), e))
            except asyncio.CancelledError:
                raise
            finally:
                await self._close()
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
        if self.spec[1] or (c.bonds is not None and c.bonds.get(self.addr) is not None):
            try:
                res = await conn.pair(bond=True, mitm=False, lesc=True)
            except BleError as e:
                if "KEY_MISSING" not in str(e) and "0x06" not in str(e):
                    raise
                # The device lost our bond (reset, battery change), or an impostor
                # claims its address. Say so once; pair afresh at once ("auto", for
                # homes where nobody would open a window) or only inside a pairing
                # window ("window": a person confirms it is the patient's device).
                if not self.needs_pairing:
                    self.bond_losses += 1
                    c.telemetry(self.addr, MDC_HUB_BOND_LOST, self.bond_losses)
                if c.rebond != "auto" and not c._pairing():
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
        if self.kind == "cgm":
            ch = find_char(svcs, 0x2AAA)
            if ch is not None:
                from hub.profiles import cgm
                start, tzo = cgm.start(profiles.parse(0x2AAA, await conn.read(ch.handle)))
                self.opts = {"start": start, "tzo": tzo}
        for uuid, mode in self.spec[2]:
            ch = find_char(svcs, uuid)
            if ch is not None and ch.cccd:
                await conn.subscribe(ch.cccd, mode)
        self.subscribed = True
        self.last_heard = c.port.ticks_ms()
        self.silent_reported = False
        c.telemetry(self.addr, MDC_HUB_DEVICE_CONNECTED, self.connects)
        if find_char(svcs, RACP) is not None and self.kind in ("glucose", "cgm"):
            await self._backfill(conn, find_char(svcs, RACP))
        if self.kind == "polar":
            ch = find_char(svcs, PMD_CP)
            if ch is not None:
                await self._pmd_start(conn, ch)
        while not self.gone.is_set():
            try:
                await wait_ms(self.gone.wait(), SILENCE_CHECK_MS)
            except asyncio.TimeoutError:
                self._check_silence()

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
        ch = find_char(svcs, CURRENT_TIME)
        utc = self.c.port.utc_ms()
        if ch is None or utc is None or not ch.props & (PROP_WRITE | PROP_WRITE_NR):
            return
        from hub.profiles import timefmt
        try:
            await conn.write(ch.handle, timefmt.current_time_at(utc // 1000), response=bool(ch.props & PROP_WRITE))
        except BleError as e:
            # Not fatal: the receiver corrects device times from (dts, hts).
            self.c.log("%s %s: clock not set: %s" % (self.kind, addr_str(self.addr), e))

    async def _backfill(self, conn, ch):
        """Ask for every stored record after the last one the journal has; wait until the device says done."""
        from hub.profiles import racp
        after = max(self.last_rec, self.staged_rec)
        req = racp.report_from(after + 1) if after >= 0 else racp.report_all()
        ev = asyncio.Event()
        self.racp = (ev, [])
        await conn.write(ch.handle, req, response=True)
        try:
            await wait_ms(ev.wait(), RACP_TIMEOUT_MS)
        except asyncio.TimeoutError:
            raise BleError("RACP report timed out")
        res = self.racp[1]
        self.racp = None
        self.c.store.commit()
        self.c.remember()
        if not res:
            raise BleError("link lost during the RACP report")
        if res[-1][1] not in (racp.SUCCESS, racp.NO_RECORDS):
            raise BleError("RACP report refused: %s" % racp.CODES.get(res[-1][1], res[-1][1]))

    async def _pmd_start(self, conn, ch):
        from hub.profiles import polar_pmd
        ev = asyncio.Event()
        self.pmd = (ev, [])
        await conn.write(ch.handle, polar_pmd.start_ecg(), response=True)
        try:
            await wait_ms(ev.wait(), 10000)
        except asyncio.TimeoutError:
            raise BleError("PMD start ECG: no response")
        resp = self.pmd[1][0] if self.pmd[1] else None
        self.pmd = None
        if resp is None or resp.get("status") != 0:
            raise BleError("PMD start ECG refused: %r" % (resp,))

    async def _close(self):
        self.flush_summary()
        conn, self.conn = self.conn, None
        if conn is not None:
            self.c.by_conn.pop(conn.handle, None)
            if not self.gone.is_set():
                await conn.disconnect()
        self.gone.set()
        if self.racp is not None:
            self.racp[0].set()
        if self.pmd is not None:
            self.pmd[0].set()

    def _check_silence(self):
        limit = self.spec[3]
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
        if self.pmd is not None:
            self.pmd[0].set()

    def value(self, handle, data):
        """A notification, indication or read value from this device."""
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
            if uuid == PMD_CP:
                resp = profiles.parse(uuid_str(PMD_CP), data)
                if self.pmd is not None and resp.get("kind") == "response":
                    self.pmd[1].append(resp)
                    self.pmd[0].set()
                return
            if uuid == SOCP:
                profiles.parse(SOCP, data)
                return
            # hub.ble gives 128-bit UUIDs as big-endian bytes; the profile registry takes their text
            puuid = uuid if isinstance(uuid, int) else uuid_str(uuid)
            partials = profiles.decode(puuid, data, **self.opts) if self.kind == "cgm" else profiles.decode(puuid, data)
        except ProfileError as e:
            self.bad_payloads += 1
            self.c.bad_payloads += 1
            self.last_error = str(e)
            return
        if uuid == 0x2A37:
            partials = self._heart_rate(partials)
        for p in partials:
            if not self.info_sent and self.info:
                p[reading.INFO] = self.info
                self.info_sent = True
            prio = reading.PRIO_TELEMETRY if uuid == BATTERY_LEVEL else alarms.classify(p)
            # a stored record the device can send again through RACP may wait for a group commit
            self.c.store.put(p, self.addr, prio, self.backed and reading.REC in p)
            self.readings += 1
            rec = p.get(reading.REC)
            if rec is not None and uuid != 0x2A34:
                if self.racp is not None:
                    self.backfilled += 1
                if rec > self.staged_rec:
                    self.staged_rec = rec

    def _heart_rate(self, partials):
        """Keep a summary of the rate; store alarms, energy, RR and finished summaries."""
        out = []
        for p in partials:
            if p.get(reading.MDC) != 147842 or not isinstance(p.get(reading.VAL), int):
                if p.get(reading.MDC) != 147240 or self.c.keep_rr:
                    out.append(p)
                continue
            if alarms.classify(p) == reading.PRIO_ALARM:
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
        return {"addr": addr_str(self.addr), "kind": self.kind, "connected": self.conn is not None,
                "subscribed": self.subscribed, "readings": self.readings, "backfilled": self.backfilled,
                "last_rec": self.last_rec, "connects": self.connects, "disconnects": self.disconnects,
                "errors": self.errors, "bad_payloads": self.bad_payloads, "bond_losses": self.bond_losses,
                "needs_pairing": self.needs_pairing, "last_error": self.last_error}


class Collector:
    def __init__(self, central, store, port, devices=(), bonds=None, log=print):
        self.central = central
        self.store = store
        self.port = port
        self.bonds = bonds
        self.log = log
        self.devices = {}
        self.by_conn = {}
        self.unknown_handles = 0
        self.bad_payloads = 0
        self.ignored_adv = 0
        self.pairing_until = None
        self.rebond = "auto"  # after a lost bond: "auto" pairs again at once, "window" only in a pairing window
        self.keep_rr = False  # RR intervals stored as runs (for HRV), off: ECG straps carry them anyway
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

    def open_pairing(self, seconds):
        """Accept unknown devices advertising a supported health service for this long."""
        self.pairing_until = self.port.ticks_ms() + seconds * 1000

    def _pairing(self):
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
        """After a commit: the record numbers staged so far are durable now."""
        for d in self.devices.values():
            if d.staged_rec > d.last_rec:
                d.last_rec = d.staged_rec
                state.write_int(_rec_key(d.addr), d.last_rec)

    async def _commit_task(self):
        while True:
            await asyncio.sleep_ms(COMMIT_EVERY_MS) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(
                COMMIT_EVERY_MS / 1000)
            if self.store.staged and self.store.due():
                self.store.commit()
            if not self.store.staged:
                self.remember()  # only record numbers that are durable now

    async def _dispatch(self):
        fifo = self.central.events
        while True:
            ev = await fifo.get()
            try:
                self._event(ev)
            except Exception as e:  # noqa: BLE001 - one bad event must not stop collection
                self.log("ble event %r: %s" % (ev[0], e))

    def _event(self, ev):
        k = ev[0]
        if k == "notify" or k == "indicate":
            d = self.by_conn.get(ev[1])
            if d is None:
                self.unknown_handles += 1
            else:
                d.value(ev[2], ev[3])
        elif k == "adv":
            addr = bytes(ev[1])
            d = self.devices.get(addr)
            if d is not None:
                d.seen.set()
            elif self._pairing():
                kind = kind_for_services(adv_services(ev[3]) + adv_services(ev[4]))
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
            want = self._pairing() or any(d.conn is None for d in self.devices.values())
            if want != scanning:
                try:
                    await self.central.scan(want)
                    scanning = want
                except BleError as e:
                    self.log("scan: %s" % e)
            await asyncio.sleep(1)

    async def run(self):
        self._tasks = [asyncio.create_task(self._dispatch()), asyncio.create_task(self._commit_task()),
                       asyncio.create_task(self._scan_task())]
        for d in list(self.devices.values()):
            self._tasks.append(asyncio.create_task(d.run()))
        await self._tasks[0]

    def stats(self):
        return {"fifo": self.central.events.stats(), "unknown_handles": self.unknown_handles,
                "bad_payloads": self.bad_payloads, "ignored_adv": self.ignored_adv,
                "devices": [d.stats() for d in self.devices.values()]}
