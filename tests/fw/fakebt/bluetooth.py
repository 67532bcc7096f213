# A stand-in for MicroPython's `bluetooth` module, so that hub.ble.native
# (written for the boards) runs on the unix port and CPython in tests.
#
# It has two modes, one per stack the boards run, and each behaviour below
# is taken from MicroPython's own sources (micropython/micropython, read at
# 1c3c201, Aug 2026) rather than from what we would like the stacks to do:
#   "nimble"  - ESP32: extmod/nimble/modbluetooth_nimble.c, ports/esp32/mpconfigport.h
#               (MICROPY_PY_BLUETOOTH_ENABLE_PAIRING_BONDING 1, sync events)
#   "btstack" - Pico W: extmod/btstack/modbluetooth_btstack.c, ports/rp2/CMakeLists.txt
#               (RPI_PICO_W builds BTstack without MICROPY_PY_BLUETOOTH_ENABLE_PAIRING_BONDING)
# and from extmod/modbluetooth.c (argument checks, IRQ dispatch) for both.
# What could only be settled on hardware is marked "(hardware)".
#
# Events the stack raises later (GATT results, connects) are delivered by a
# pump task, one per asyncio.sleep(0), as the stack's task would; events
# the source raises inside the call (SCAN_DONE from gap_connect on NimBLE,
# the secret look-ups during active(True)) are delivered inside the call.
#
#   reset(mode, peers) -> the BLE object that bluetooth.BLE() returns next.

import asyncio

MODE = "nimble"
_PEERS = []
_BLE = None

EINVAL = 22
EBUSY = 16
EALREADY = 114
ENOTCONN = 107

_OUR_SEC = 1   # BLE_STORE_OBJ_TYPE_OUR_SEC
_PEER_SEC = 2  # BLE_STORE_OBJ_TYPE_PEER_SEC
SEC_VALUE_LEN = 80  # an opaque struct ble_store_value_sec blob (its size does not matter to the hub)

GLUCOSE_DB = [  # (start, end, uuid LE, [(value_handle, props, uuid LE, cccd or 0)])
    (1, 5, b"\x0a\x18", [(3, 0x02, b"\x29\x2a", 0)]),                                  # DIS: manufacturer
    (6, 12, b"\x08\x18", [(8, 0x10, b"\x18\x2a", 9), (11, 0x28, b"\x52\x2a", 12)]),    # glucose: meas, RACP
]


class UUID:
    pass


class Peer:
    """A scripted peripheral: its address (7 bytes, MSB first), GATT table and state."""

    def __init__(self, addr, db=None, values=None, present=True, adv=b"\x03\x03\x08\x18"):
        self.addr = bytes(addr)
        self.db = db or GLUCOSE_DB
        self.values = values if values is not None else {3: b"Acme"}
        self.present = present      # advertising and connectable
        self.knows_us = False       # holds our bond (False after a factory reset: a lost bond)
        self.mtu = 185
        self.adv = adv
        self.hold = ()              # procedures it never answers ("read", "write", "services", ...)
        self.in_discovery = []      # what it starts itself during service discovery: ("mtu",) / ("enc",)
        self.mtu_started = 0        # MTU exchanges it started itself (in_discovery), for tests to count
        self.secure = ()            # handles that need an encrypted link (ATT 0x05 otherwise)
        self.on_write = None        # f(ble, conn, handle, data): what the device does about a write

    def lsb_key(self):
        # ble_addr_t as modbluetooth_nimble.c ble_secret_store_write hands it up: type, then the
        # address least significant byte first (NimBLE's order; reverse_addr_byte_order converts
        # only the addresses of connect/scan events).
        return bytes((self.addr[0],)) + bytes(reversed(self.addr[1:]))


def reset(mode="nimble", peers=None):
    global MODE, _PEERS, _BLE
    assert mode in ("nimble", "btstack")
    MODE = mode
    _PEERS = list(peers) if peers is not None else [Peer(b"\x00\xc0\xff\xee\x00\x00\x01")]
    _BLE = (_NimBLE if mode == "nimble" else _BTstackBLE)()
    return _BLE


def BLE():
    # modbluetooth.c bluetooth_ble_make_new: one BLE object per VM (a singleton).
    global _BLE
    if _BLE is None:
        reset(MODE, _PEERS or None)
    return _BLE


def schedule(fn, arg):
    """micropython.schedule as a board's handler sees it: modbluetooth.c invoke_irq_handler holds
    mp_sched_lock() while the handler runs, so what it schedules runs after it returns (on the
    main thread). The unix port's own scheduler would run it inside the handler instead."""
    ble = _BLE
    if ble is not None and ble.in_irq:
        ble.scheduled.append((fn, arg))
    else:
        fn(arg)


class _BaseBLE:
    def __init__(self):
        self.irqh = None
        self.on = False
        self.peers = _PEERS
        self.scanning = False
        self.connecting = None        # (peer or None, timeout) while a gap_connect is pending
        self.conns = {}               # handle -> peer
        self.enc = {}                 # handle -> encrypted
        self.busy = {}                # handle -> name of the pending procedure
        self.next_handle = 0
        self.writes = []
        self.secrets = []             # what SET_SECRET returned
        self.cfg = {"mtu": 23}
        self.crashed = []             # exceptions that disabled the handler (modbluetooth.c)
        self.in_irq = False
        self.restored = []            # secrets handed to the stack at activation
        self.held = []                # answers held back by peers (delivered by release(): late events)
        self.calls = []               # API calls, in order
        self._queue = []
        self._pumping = False
        self.scheduled = []

    # ----------------------------------------------------- IRQ delivery
    def _irq(self, event, data):
        # modbluetooth.c invoke_irq_handler_run_protected: an exception in the handler is printed
        # and the handler set to None - every later event is dropped, for good.
        h = self.irqh
        if h is None:
            return None
        self.in_irq = True
        try:
            return h(event, data)
        except Exception as e:  # noqa: BLE001 - what the C code does with it
            print("Unhandled exception in IRQ callback handler")
            self.crashed.append(e)
            self.irqh = None
            return None
        finally:
            self.in_irq = False
            while self.scheduled:  # the scheduler is unlocked: what the handler scheduled runs now
                fn, arg = self.scheduled.pop(0)
                fn(arg)

    def _later(self, event, data):
        self._queue.append((event, data))
        if not self._pumping:
            self._pumping = True
            asyncio.create_task(self._pump())

    async def _pump(self):
        try:
            while self._queue:
                await asyncio.sleep(0)
                event, data = self._queue.pop(0)
                if callable(event):
                    event()
                else:
                    self._irq(event, data)
        finally:
            self._pumping = False

    async def settle(self):
        """Let every queued event reach the handler (tests)."""
        while self._queue or self._pumping:
            await asyncio.sleep(0)

    # ------------------------------------------------------------ API
    def active(self, *a):
        if a:
            self.on = bool(a[0])
            if self.on:
                self._activated()
        return self.on

    def _activated(self):
        pass

    def config(self, *a, **kw):
        if a:
            if a[0] == "mac":
                return (0, b"\x11\x22\x33\x44\x55\x66")
            if a[0] == "mtu":
                return self.cfg["mtu"]
            raise ValueError("unknown config param")
        for k, v in kw.items():
            if k in ("bond", "mitm", "io", "le_secure") and not self.bonding:
                # modbluetooth.c bluetooth_ble_config: these cases exist only with
                # MICROPY_PY_BLUETOOTH_ENABLE_PAIRING_BONDING; otherwise "unknown config param".
                raise ValueError("unknown config param")
            self.cfg[k] = v
        return None

    def irq(self, h):
        self.irqh = h

    def _peer(self, addr7):
        for p in self.peers:
            if p.addr == bytes(addr7):
                return p
        return None

    def gap_scan(self, duration, interval_us=1280000, window_us=11250, active=False):
        self.calls.append("scan" if duration is not None else "scan-stop")
        if duration is None:
            self._scan_stop()
            return
        self._scan_start()
        self.scanning = True
        self._advertise()
        if not getattr(self, "_adv_task", False):
            self._adv_task = True
            asyncio.create_task(self._adverts())

    def _advertise(self):
        for p in self.peers:
            if p.present and p not in self.conns.values() and (self.connecting is None or self.connecting[0] is not p):
                self._later(5, (p.addr[0], p.addr[1:], 0, -40, memoryview(p.adv)))

    async def _adverts(self):
        # peripherals advertise again and again (every 100 ms here) while we scan
        try:
            while self.scanning:
                await asyncio.sleep(0.1)
                if self.scanning and self.on:
                    self._advertise()
        finally:
            self._adv_task = False

    def _scan_start(self):
        pass

    def _scan_stop(self):
        raise NotImplementedError

    def gap_connect(self, *a):
        if len(a) == 1:
            if a[0] is not None:
                raise TypeError("invalid addr")
            self.calls.append("connect-cancel")
            return self._cancel()
        t, addr = a[0], bytes(a[1])
        timeout = a[2] if len(a) > 2 else 2000  # MP_BLUETOOTH_CONNECT_DEFAULT_SCAN_DURATION_MS
        if len(addr) != 6:
            raise ValueError("invalid addr")
        self.calls.append("connect")
        if self.connecting is not None:
            self._second_connect()
        peer = self._peer(bytes((t,)) + addr)
        self._connect_started()
        self.connecting = (peer, timeout)
        if peer is not None and peer.present:
            self._later(self._connected, None)
        else:
            self._no_peer(timeout)

    def _connected(self):
        c = self.connecting
        if c is None or c[0] is None:
            return
        self.connecting = None
        p = c[0]
        h = self.next_handle
        self.next_handle += 1
        self.conns[h] = p
        self.enc[h] = False
        self._connect_ended()
        self._irq(7, (h, p.addr[0], memoryview(p.addr[1:])))

    def _connect_ended(self):
        pass

    def gap_disconnect(self, h):
        self.calls.append("disconnect")
        if h not in self.conns:
            return False  # modbluetooth.c bluetooth_ble_gap_disconnect: ENOTCONN -> False
        self.drop(h, 0x16, later=True)
        return True

    def drop(self, h, reason=0x08, later=False):
        """The link goes (the peer left, or we asked). Pending procedures end first."""
        p = self.conns.pop(h)
        self.enc.pop(h, None)
        busy = self.busy.pop(h, None)
        send = self._later if later else self._irq
        if busy is not None:
            done = self._broken_done(h, busy)
            if done is not None:
                send(*done)
        send(8, (h, p.addr[0], memoryview(p.addr[1:])))

    def _broken_done(self, h, busy):
        return None

    def _start(self, h, name):
        if h not in self.conns:
            raise OSError(ENOTCONN)
        self.calls.append(name)
        return self.conns[h]

    def _answer(self, h, p, name, events):
        if name in p.hold:
            self.busy[h] = name
            self.held.append((h, events))
            return
        self.busy[h] = name
        for ev in events:
            self._later(ev[0], ev[1])
        self._later(self._done_fn(h, name), None)

    def _done_fn(self, h, name):
        def done():
            if self.busy.get(h) == name:
                del self.busy[h]
        return done

    def release(self):
        """Deliver what peers held back: the late answers a stack reports after its own timeout."""
        held, self.held = self.held, []
        for h, events in held:
            self.busy.pop(h, None)
            for ev in events:
                self._later(ev[0], ev[1])

    def gattc_exchange_mtu(self, h):
        p = self._start(h, "mtu")
        self._later(21, (h, min(p.mtu, self.cfg.get("mtu", 23))))

    def gattc_discover_services(self, h, uuid=None):
        p = self._start(h, "services")
        evs = []
        for i, (start, end, u, _) in enumerate(p.db):
            evs.append((9, (h, start, end, memoryview(u))))
            if i == 0:
                evs.extend(self._peer_started(h, p))
        evs.append((10, (h, 0)))
        self._answer(h, p, "services", evs)

    def _peer_started(self, h, p):
        # The peer may start an MTU exchange or encryption whenever it likes; the stack reports
        # them as MTU_EXCHANGED / ENCRYPTION_UPDATE between our discovery results.
        out = []
        for what in p.in_discovery:
            if what[0] == "mtu":
                p.mtu_started += 1
                out.append((21, (h, min(p.mtu, self.cfg.get("mtu", 23)))))
            elif what[0] == "enc" and self.bonding:
                out.append((28, (h, 1, 0, 1, 16)))
        return out

    def gattc_discover_characteristics(self, h, start, end, uuid=None):
        p = self._start(h, "chars")
        self._chars_begin(h)
        evs = []
        for s, e, _u, chars in p.db:
            if start <= s <= end:
                for i, (vh, props, cu, _) in enumerate(chars):
                    last = chars[i + 1][0] - 2 if i + 1 < len(chars) else e
                    evs.append((11, (h, last, vh, props, memoryview(cu))))
        evs.append((12, (h, 0)))
        self._answer(h, p, "chars", evs)
        self._later(self._chars_end, None)

    def _chars_begin(self, h):
        pass

    def _chars_end(self):
        pass

    def _descs(self, h, p, first, end):
        evs = []
        for _s, _e, _u, chars in p.db:
            for _vh, _props, _cu, cccd in chars:
                if cccd and first <= cccd <= end:
                    evs.append((13, (h, cccd, memoryview(b"\x02\x29"))))
        return evs

    att_base = 0  # what the stack adds to an ATT error code in a DONE status

    def gattc_read(self, h, vh):
        p = self._start(h, "read")
        if vh in p.secure and not self.enc.get(h):
            self._answer(h, p, "read", [(16, (h, vh, self.att_base + 0x05))])  # insufficient authentication
        elif vh in p.values:
            self._answer(h, p, "read", [(15, (h, vh, memoryview(p.values[vh]))), (16, (h, vh, 0))])
        else:
            self._answer(h, p, "read", [(16, (h, vh, self.att_base + 0x02))])  # read not permitted

    def gattc_write(self, h, vh, data, mode=0):
        p = self._start(h, "write")
        self.writes.append((vh, bytes(data)))
        if mode:
            self._answer(h, p, "write", [(17, (h, vh, 0))])
        if p.on_write is not None:
            p.on_write(self, h, vh, bytes(data))

    # ------------------------------------------------------------ test helpers
    def notify(self, h, vh, data, indicate=False):
        self._irq(19 if indicate else 18, (h, vh, memoryview(data)))

    def peer_mtu(self, h, mtu=185):
        self._later(21, (h, mtu))


class _NimBLE(_BaseBLE):
    bonding = True
    # ble_gattc_attr_read_cb / ble_gattc_attr_write_cb pass error->status: NimBLE host codes,
    # an ATT error as BLE_HS_ERR_ATT_BASE (0x100) + its code.
    att_base = 0x100

    def _activated(self):
        # (hardware) NimBLE restores bonded peers when its host syncs, reading the peer records
        # through modbluetooth_nimble.c ble_secret_store_read's "<type=peer,*> (with index)"
        # branch: GET_SECRET with key None and index 0, 1, ... until None. Without a handler
        # set before active(True) the stack hears of no bond at all.
        i = 0
        while True:
            v = self._irq(29, (_PEER_SEC, i, None))
            if v is None:
                break
            self.restored.append(bytes(v))
            i += 1

    def _scan_start(self):
        if self.scanning:
            raise OSError(EALREADY)  # ble_gap_disc while discovering: BLE_HS_EALREADY
        if self.connecting is not None:
            raise OSError(EBUSY)  # (hardware) ble_gap_disc while a connect is pending: BLE_HS_EBUSY

    def _scan_stop(self):
        # mp_bluetooth_gap_scan_stop: only if ble_gap_disc_active(); then SCAN_DONE, inside the call
        if self.scanning:
            self.scanning = False
            self._irq(6, ())

    def _second_connect(self):
        raise OSError(EALREADY)  # ble_gap_connect: a master procedure in progress -> BLE_HS_EALREADY

    def _connect_started(self):
        # mp_bluetooth_gap_peripheral_connect: "if (ble_gap_disc_active()) mp_bluetooth_gap_scan_stop();"
        # -> SCAN_DONE with an empty tuple, raised inside gap_connect.
        if self.scanning:
            self._scan_stop()

    def _no_peer(self, timeout):
        # ble_gap_connect(duration_ms): after it, BLE_GAP_EVENT_CONNECT with a failed status, which
        # peripheral_gap_event_cb raises as PERIPHERAL_DISCONNECT (0xFFFF, 0xff, 00:00:00:00:00:00).
        attempt = self.connecting

        async def expire():
            await asyncio.sleep(timeout / 1000)
            if self.connecting is attempt:
                self.connecting = None
                self._irq(8, (0xFFFF, 0xFF, memoryview(bytes(6))))
        asyncio.create_task(expire())

    def _cancel(self):
        if self.connecting is None:
            raise OSError(EALREADY)  # ble_gap_conn_cancel with nothing pending: BLE_HS_EALREADY
        self.connecting = None
        self._later(8, (0xFFFF, 0xFF, memoryview(bytes(6))))

    def _chars_begin(self, h):
        # mp_bluetooth_gattc_discover_characteristics: one characteristic discovery at a time for
        # the whole stack (char_disc_end_handle is a root pointer, not per connection) -> MP_EBUSY.
        if getattr(self, "_char_disc", False):
            raise OSError(EBUSY)
        self._char_disc = True

    def _chars_end(self):
        self._char_disc = False

    def gattc_discover_descriptors(self, h, start, end):
        # mp_bluetooth_gattc_discover_descriptors -> ble_gattc_disc_all_dscs: `start` is the
        # characteristic's value handle and the search begins after it (Find Information from
        # start + 1); with start + 1 > end the request is refused: BLE_HS_EINVAL -> OSError.
        p = self._start(h, "descs")
        if start + 1 > end:
            raise OSError(EINVAL)
        self._answer(h, p, "descs", self._descs(h, p, start + 1, end) + [(14, (h, 0))])

    def _broken_done(self, h, busy):
        # ble_gattc_connection_broken: pending procedures end with BLE_HS_ENOTCONN before the
        # disconnect is reported.
        return {"services": (10, (h, 7)), "chars": (12, (h, 7)), "descs": (14, (h, 7)),
                "read": (16, (h, 0, 7)), "write": (17, (h, 0, 7))}.get(busy)

    def gap_pair(self, h):
        p = self._start(h, "pair")
        key = p.lsb_key()
        have = self._irq(29, (_OUR_SEC, 0, key)) is not None
        if have and p.knows_us:
            def encrypted():
                self.enc[h] = True
            self._answer(h, p, "pair", [(encrypted, None), (28, (h, 1, 0, 1, 16))])
        elif have:
            # The peer forgot its keys: encryption with the stored LTK fails. commmon_gap_event_cb
            # (BLE_GAP_EVENT_ENC_CHANGE) reports desc.sec_state and drops the status: all we see is
            # "not encrypted".
            self._answer(h, p, "pair", [(28, (h, 0, 0, 0, 0))])
        else:
            def paired():
                self.secrets.append(self._irq(30, (_OUR_SEC, memoryview(key), memoryview(b"O" * SEC_VALUE_LEN))))
                self.secrets.append(self._irq(30, (_PEER_SEC, memoryview(key), memoryview(b"P" * SEC_VALUE_LEN))))
                p.knows_us = True
                self.enc[h] = True
            self._answer(h, p, "pair", [(paired, None), (28, (h, 1, 0, 1, 16))])

    def peer_encrypts(self, h):
        self.enc[h] = True
        self._later(28, (h, 1, 0, 1, 16))


class _BTstackBLE(_BaseBLE):
    bonding = False  # no gap_pair, no bond config, no ENCRYPTION_UPDATE, no secret IRQs

    def __init__(self):
        super().__init__()
        self.next_handle = 0x40
        self.supervision_ms = None

    def _scan_stop(self):
        # mp_bluetooth_gap_scan_stop (btstack): gap_stop_scan(), then SCAN_DONE, every time.
        self.scanning = False
        self._irq(6, ())

    def _second_connect(self):
        raise OSError(EINVAL)  # gap_connect: ERROR_CODE_COMMAND_DISALLOWED -> btstack_error_to_errno EINVAL

    def _connect_started(self):
        # (hardware) BTstack's hci.c pauses scanning while it creates a connection, without an
        # event MicroPython would turn into SCAN_DONE; it resumes afterwards.
        self._paused = self.scanning
        self.scanning = False

    def _connect_ended(self):
        if getattr(self, "_paused", False):
            self.scanning = True
            self._paused = False

    def _no_peer(self, timeout):
        # mp_bluetooth_gap_peripheral_connect (btstack): duration_ms only becomes the supervision
        # timeout (duration_ms / 10); the attempt itself runs until gap_connect(None).
        self.supervision_ms = timeout

    def _cancel(self):
        # gap_connect_cancel; the controller answers with LE Connection Complete (status 0x02),
        # and btstack_packet_handler_generic raises PERIPHERAL_CONNECT without looking at the
        # status: a "connect" whose handle and address mean nothing.
        if self.connecting is None:
            return
        self.connecting = None
        self._connect_ended()
        self._later(7, (0, 0, memoryview(bytes(6))))

    def _start(self, h, name):
        p = super()._start(h, name)
        if h in self.busy:
            raise OSError(EALREADY)  # gatt_client not ready on this link: GATT_CLIENT_IN_WRONG_STATE
        return p

    def gattc_discover_descriptors(self, h, start, end):
        # gatt_client_discover_characteristic_descriptors: value_handle = start; if it equals the
        # end handle the query completes at once, empty; otherwise the search starts after it.
        p = self._start(h, "descs")
        if start == end:
            self._answer(h, p, "descs", [(14, (h, 0))])
        elif start > end:
            self._answer(h, p, "descs", [(14, (h, 0x01))])  # the peer's Invalid Handle
        else:
            self._answer(h, p, "descs", self._descs(h, p, start + 1, end) + [(14, (h, 0))])
