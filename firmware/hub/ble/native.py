# BLE on the boards (ESP32 with NimBLE, Pico W with BTstack) through
# MicroPython's low-level `bluetooth` module, without aioble: aioble keeps
# only the latest notification per characteristic (micropython-lib #934)
# and stores bond keys as plain JSON. Here the IRQ handler copies what the
# stack hands it, puts it in our bounded FIFO (events) or in the pending
# operation's slot, and sets a flag; the awaiting task does the rest.
# Bond keys go to the hub's sealed BondStore through the secret IRQs.
#
# What the two stacks do differently, and what this module does about it
# (each taken from MicroPython's sources; tests/fw/fakebt plays both):
# - MicroPython disables an IRQ handler that raised, for good
#   (extmod/modbluetooth.c invoke_irq_handler_run_protected): _irq never
#   raises, and counts what it could not handle.
# - gap_connect stops a running scan (NimBLE: SCAN_DONE with an empty
#   tuple, modbluetooth_nimble.c mp_bluetooth_gap_peripheral_connect);
#   connect() restarts the scan the collector asked for.
# - One connect at a time; NimBLE: one characteristic discovery at a time
#   for the whole stack (mp_bluetooth_gattc_discover_characteristics,
#   MP_EBUSY): a connect lock and a discovery lock on the Central.
# - Descriptor discovery starts at the value handle and searches after it
#   (ble_gattc_disc_all_dscs; BTstack's
#   gatt_client_discover_characteristic_descriptors).
# - The Pico W build has no pairing (MICROPY_PY_BLUETOOTH_ENABLE_PAIRING_BONDING
#   unset): `bonding` is False and pair() says so.
# - ENCRYPTION_UPDATE has no status (modbluetooth_nimble.c
#   commmon_gap_event_cb): a failed re-encryption with a stored bond is a
#   lost bond.
# - The stack's own GATT timeout is 30 s; ours is shorter, so a late DONE
#   could land in the next procedure: after our timeout the link is dropped.
#
# Imported only on boards (the unix port has no `bluetooth` module).
#
# One module: one IRQ handler owns every piece of state here. Central._irq
# fills the pending operation slots that Connection's awaiting methods read,
# and each stack difference listed above is a contract between the two
# classes (the scan restarted after a connect, the discovery lock, a link
# dropped after our timeout). It is imported only on boards, whole, and never
# unloaded: splitting would cost heap and separate what the IRQ writes from
# what the tasks read.

import asyncio

import bluetooth

from hub.ble import KEY_MISSING, BleError, Char, Fifo, Flag, Link, Service, wait_ms
from hub.ble import bonds as _bonds

try:
    from micropython import const
except ImportError:  # CPython runs this module against a stand-in `bluetooth` in tests
    def const(x):
        return x

try:
    from micropython import schedule as _schedule
except ImportError:  # CPython
    _schedule = None

_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_SERVICE_RESULT = const(9)
_IRQ_GATTC_SERVICE_DONE = const(10)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_DESCRIPTOR_RESULT = const(13)
_IRQ_GATTC_DESCRIPTOR_DONE = const(14)
_IRQ_GATTC_READ_RESULT = const(15)
_IRQ_GATTC_READ_DONE = const(16)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_NOTIFY = const(18)
_IRQ_GATTC_INDICATE = const(19)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_ADV_SCAN_RSP = const(4)
_CCCD = const(0x2902)
_SCAN_FOREVER = const(0)
_NO_CONN = const(0xFFFF)  # NimBLE's BLE_HS_CONN_HANDLE_NONE: a connect attempt that failed
_EALREADY = const(114)
_LOST = const(-1)  # op.status: the link went while the procedure was pending
_CANCEL_WAIT_MS = const(2000)

# which pending procedure an event belongs to; anything else is stray
_OP_OF = {_IRQ_GATTC_SERVICE_RESULT: "services", _IRQ_GATTC_SERVICE_DONE: "services",
          _IRQ_GATTC_CHARACTERISTIC_RESULT: "chars", _IRQ_GATTC_CHARACTERISTIC_DONE: "chars",
          _IRQ_GATTC_DESCRIPTOR_RESULT: "descs", _IRQ_GATTC_DESCRIPTOR_DONE: "descs",
          _IRQ_GATTC_READ_RESULT: "read", _IRQ_GATTC_READ_DONE: "read", _IRQ_GATTC_WRITE_DONE: "write"}


def _uuid(u):
    b = bytes(u)  # little-endian on the air
    if len(b) == 2:
        return b[0] | b[1] << 8
    return bytes(reversed(b))


def addr_from_key(key):
    """NimBLE's secret key (a ble_addr_t: type, then the address LSB first) as our addr7 (MSB first)."""
    k = bytes(key)
    if len(k) < 7:
        raise ValueError("secret key of %d bytes" % len(k))
    return bytes((k[0],)) + bytes(reversed(k[1:7]))


def status_text(status):
    """A DONE event's status in words. NimBLE hands up its host error codes, ATT errors among
    them as BLE_HS_ERR_ATT_BASE (0x100) + the ATT code (modbluetooth_nimble.c
    ble_gattc_attr_read_cb passes error->status); BTstack the ATT code itself."""
    if 0x100 < status < 0x200:
        status -= 0x100
    elif status < 0 or status > 0xFF:
        return "stack error %d" % status
    return "att error 0x%02x" % status


class _Op:
    # One outstanding GATT procedure per connection, as the stacks allow.
    def __init__(self, kind):
        self.kind = kind
        self.flag = Flag()
        self.items = []
        self.status = None
        self.value = None


class Connection(Link):
    def __init__(self, central, handle, addr):
        super().__init__(central, handle, addr)
        self.op = None
        self.encrypted = False
        self.broken = None  # why this link is unusable (gone, or dropped after a timeout)
        self.lock = asyncio.Lock()

    async def _run(self, kind, fn, args, timeout_ms, shared=None):
        """Start fn(*args), a procedure whose events come back as `kind`, and wait for its end."""
        async with self.lock:
            if shared is not None:
                await shared.acquire()
            try:
                if self.broken:
                    raise BleError(self.broken)
                op = self.op = _Op(kind)
                try:
                    fn(*args)
                    await wait_ms(op.flag.wait(), timeout_ms)
                except asyncio.TimeoutError:
                    # The stack's own timeout (30 s, ATT) is longer: its late DONE must not land in
                    # the next procedure, and after an ATT timeout the bearer is dead anyway (Core
                    # spec Vol 3 Part F 3.3.3). Drop the link; the device reconnects.
                    self._break("%s timed out after %d ms (link dropped)" % (kind, timeout_ms))
                    raise BleError(self.broken)
                except OSError as e:
                    raise BleError("%s failed: %s" % (kind, e))
                finally:
                    self.op = None
            finally:
                if shared is not None:
                    shared.release()
            if op.status == _LOST:
                raise BleError("link lost during %s" % kind)
            if op.status:
                raise BleError("%s: %s" % (kind, status_text(op.status)))
            return op

    def _break(self, why):
        self.broken = why
        try:
            self.central.ble.gap_disconnect(self.handle)
        except OSError:
            pass

    async def exchange_mtu(self, mtu=247):
        if self.mtu > 23:
            return self.mtu  # the peer exchanged already (MTU_EXCHANGED came on its own)
        ble = self.central.ble
        ble.config(mtu=mtu)
        op = await self._run("mtu", ble.gattc_exchange_mtu, (self.handle,), 5000)
        self.mtu = op.value or self.mtu
        return self.mtu

    async def discover(self, timeout_ms=20000):
        ble = self.central.ble
        h = self.handle
        lock = self.central.discovery_lock
        op = await self._run("services", ble.gattc_discover_services, (h,), timeout_ms, lock)
        services = []
        for start, end, uuid in op.items:
            cop = await self._run("chars", ble.gattc_discover_characteristics, (h, start, end), timeout_ms, lock)
            chars = []
            for vh, last, props, cuuid in cop.items:
                cccd = 0
                if props & 0x30 and last > vh:
                    # start = the value handle: both stacks search from the handle after it
                    dop = await self._run("descs", ble.gattc_discover_descriptors, (h, vh, last), timeout_ms, lock)
                    for dh, duuid in dop.items:
                        if duuid == _CCCD:
                            cccd = dh
                chars.append(Char(cuuid, vh, props, cccd))
            services.append(Service(uuid, start, end, chars))
        return services

    async def pair(self, bond=True, mitm=False, lesc=True, timeout_ms=30000):
        c = self.central
        if not c.bonding:
            raise BleError("this board cannot bond: its MicroPython build has no BLE pairing (Pico W, BTstack)")
        ble = c.ble
        had = c.bonds is not None and c.bonds.get(self.addr) is not None
        ble.config(bond=bond, mitm=mitm, le_secure=lesc)
        op = await self._run("pair", ble.gap_pair, (self.handle,), timeout_ms)
        c.flush_bonds()
        enc, auth, bonded, key_size = op.value
        if not enc and had:
            # ENCRYPTION_UPDATE carries no status: with a stored bond, "not encrypted" means the
            # device no longer has it (PIN or Key Missing, 0x06) - or an impostor uses its address.
            raise BleError("the device refused our stored bond (PIN or Key Missing, 0x06)", KEY_MISSING)
        return {"encrypted": bool(enc), "bonded": bool(bonded), "lesc": bool(lesc), "key_size": key_size}

    async def read(self, handle, timeout_ms=10000):
        ble = self.central.ble
        op = await self._run("read", ble.gattc_read, (self.handle, handle), timeout_ms)
        return op.value or b""

    async def write(self, handle, data, response=True, timeout_ms=10000):
        ble = self.central.ble
        if not response:
            if self.broken:
                raise BleError(self.broken)
            try:
                ble.gattc_write(self.handle, handle, data, 0)
            except OSError as e:
                raise BleError("write failed: %s" % e)
            return
        await self._run("write", ble.gattc_write, (self.handle, handle, data, 1), timeout_ms)

    async def subscribe(self, cccd_handle, mode, timeout_ms=10000):
        await self.write(cccd_handle, bytes((mode, 0)), True, timeout_ms)

    async def disconnect(self, timeout_ms=5000):
        try:
            self.central.ble.gap_disconnect(self.handle)
        except OSError:
            pass


class Central:
    def __init__(self, bonds=None):
        self.bonds = bonds
        self.events = Fifo()
        self.conns = {}
        self.irq_errors = 0   # events the handler could not take (it never raises: that would disable it)
        self.stray = 0        # GATT events with no matching procedure (late, or for a link we dropped)
        self.bond_errors = 0  # bond key saves that failed (the pairing survives until a reboot)
        self.scan_errors = 0
        self.last_error = None
        self.connect_lock = asyncio.Lock()
        self.discovery_lock = asyncio.Lock()
        self._attempt = None  # [addr7, Connection or None, Flag, cancelling] while connecting
        self._scan_on = False  # what the collector wants
        self._scan_active = True
        self._scanning = False  # what we believe the stack does
        self._flush_queued = False
        self.ble = bluetooth.BLE()
        # The handler first: NimBLE asks for stored secrets while it activates.
        self.ble.irq(self._irq)
        self.ble.active(True)
        try:
            self.ble.config(bond=True, le_secure=True, mitm=False, io=3)  # io 3: no input, no output
            self.bonding = hasattr(self.ble, "gap_pair")
        except ValueError:
            # modbluetooth.c bluetooth_ble_config: "unknown config param" where pairing is
            # compiled out (the Pico W). Collect what needs no bond; pair() says why not.
            self.bonding = False
        self.address = bytes(self.ble.config("mac")[1])

    # -------------------------------------------------------- IRQ handler
    def _irq(self, event, data):
        try:
            return self._handle(event, data)
        except Exception as e:  # noqa: BLE001 - a handler that raises is disabled by MicroPython for good
            self.irq_errors += 1
            self.last_error = "irq %d: %s: %s" % (event, type(e).__name__, e)
            return None

    def _handle(self, event, data):
        if event == _IRQ_GATTC_NOTIFY or event == _IRQ_GATTC_INDICATE:
            conn, vh, payload = data
            self.events.put(("notify" if event == _IRQ_GATTC_NOTIFY else "indicate", conn, vh, bytes(payload)))
        elif event == _IRQ_SCAN_RESULT:
            t, addr, adv_type, rssi, adv = data
            a = bytes((t,)) + bytes(addr)
            if adv_type == _ADV_SCAN_RSP:
                self.events.put(("adv", a, rssi, b"", bytes(adv)))
            else:
                self.events.put(("adv", a, rssi, bytes(adv), b""))
        elif event == _IRQ_SCAN_DONE:
            self._scanning = False  # data is empty: nothing to index
        elif event == _IRQ_PERIPHERAL_CONNECT:
            self._connected(*data)
        elif event == _IRQ_PERIPHERAL_DISCONNECT:
            self._disconnected(data[0])
        elif event == _IRQ_GET_SECRET:
            return self._secret_get(*data)
        elif event == _IRQ_SET_SECRET:
            return self._secret_set(*data)
        elif event == _IRQ_MTU_EXCHANGED:
            conn = self.conns.get(data[0])
            if conn is not None:
                conn.mtu = data[1]
                op = conn.op
                if op is not None and op.kind == "mtu":
                    op.value = data[1]
                    op.flag.set()
        elif event == _IRQ_ENCRYPTION_UPDATE:
            conn = self.conns.get(data[0])
            if conn is not None:
                conn.encrypted = bool(data[1])
                op = conn.op
                if op is not None and op.kind == "pair":
                    op.value = (data[1], data[2], data[3], data[4])
                    op.flag.set()
                self.events.put(("enc", data[0], bool(data[1])))
        else:
            self._op_event(event, data)

    def _connected(self, h, t, addr):
        a = bytes((t,)) + bytes(addr)
        att = self._attempt
        if att is None or att[1] is not None or att[0] != a:
            # Not what we wait for: BTstack reports a cancelled attempt as a "connect" with
            # meaningless fields (btstack_packet_handler_generic ignores the status).
            if att is not None and att[3]:
                att[2].set()
            self.stray += 1
            return
        conn = Connection(self, h, a)
        self.conns[h] = conn
        att[1] = conn
        att[2].set()

    def _disconnected(self, h):
        if h == _NO_CONN:  # NimBLE: the connect attempt ended without a link (timeout or cancel)
            att = self._attempt
            if att is not None:
                att[2].set()
            return
        conn = self.conns.pop(h, None)
        if conn is not None:
            conn.broken = conn.broken or "link lost"
            op = conn.op
            if op is not None:
                op.status = _LOST
                op.flag.set()
        self.events.put(("disc", h, 0))

    def _op_event(self, event, data):
        kind = _OP_OF.get(event)
        if kind is None:
            self.stray += 1  # an event we never asked for (connection update, ...)
            return
        conn = self.conns.get(data[0])
        op = conn.op if conn is not None else None
        if op is None or op.kind != kind:
            self.stray += 1  # a late DONE, or a procedure we gave up on: never someone else's
            return
        if event == _IRQ_GATTC_SERVICE_RESULT:
            op.items.append((data[1], data[2], _uuid(data[3])))
        elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
            # (conn, end_handle, value_handle, properties, uuid)
            op.items.append((data[2], data[1], data[3], _uuid(data[4])))
        elif event == _IRQ_GATTC_DESCRIPTOR_RESULT:
            op.items.append((data[1], _uuid(data[2])))
        elif event == _IRQ_GATTC_READ_RESULT:
            op.value = bytes(data[2])
        elif event == _IRQ_GATTC_READ_DONE or event == _IRQ_GATTC_WRITE_DONE:
            op.status = data[2]
            op.flag.set()
        else:  # a discovery DONE
            op.status = data[1]
            op.flag.set()

    # ---------------------------------------------- bond keys (sealed store)
    # One BondStore entry per device, under its addr7 (what the collector and bond_delete use),
    # holding every secret type NimBLE gave us for it (hub.ble.bonds.pack_secrets).
    def _secret_get(self, sec_type, index, key):
        b = self.bonds
        if b is None:
            return None
        if key is None:
            i = 0
            for a, blob in b.all():
                v = _bonds.unpack_secrets(blob).get(sec_type)
                if v is not None:
                    if i == index:
                        return v
                    i += 1
            return None
        return _bonds.unpack_secrets(b.get(addr_from_key(key))).get(sec_type)

    def _secret_set(self, sec_type, key, value):
        b = self.bonds
        if b is None:
            return False
        a = addr_from_key(key)
        secrets = _bonds.unpack_secrets(b.get(a))
        if value is None:
            if secrets.pop(sec_type, None) is None:
                return False
        else:
            secrets[sec_type] = bytes(value)
        if secrets:
            b.set(a, _bonds.pack_secrets(secrets), save=False)
        else:
            b.delete(a, save=False)
        self._queue_flush()
        return True

    def _queue_flush(self):
        # Never write flash in the IRQ: on the ESP32 it runs on the NimBLE host task (a small
        # stack), and an exception there disables the handler. aioble does the same
        # (micropython-lib aioble/security.py _security_irq: schedule(_save_secrets)).
        if self._flush_queued:
            return
        self._flush_queued = True
        try:
            if _schedule is not None:
                _schedule(self._flush, None)
            else:
                asyncio.get_running_loop().call_soon(self._flush, None)
        except RuntimeError:
            self._flush_queued = False  # queue full: the next pair() or connect() saves them

    def _flush(self, _):
        self._flush_queued = False
        self.flush_bonds()

    def flush_bonds(self):
        """Write bond keys changed in the IRQ; a failure is counted, never raised."""
        b = self.bonds
        if b is None:
            return
        try:
            b.flush()
        except Exception as e:  # noqa: BLE001 - the keys stay in RAM; the next change tries again
            self.bond_errors += 1
            self.last_error = "bond keys not saved: %s" % e

    # ----------------------------------------------------------- the API
    def stats(self):
        """What the handler could not take or place, for the hub's status (never silent)."""
        return {"irq_errors": self.irq_errors, "stray": self.stray, "bond_errors": self.bond_errors,
                "scan_errors": self.scan_errors, "bonding": self.bonding, "last_error": self.last_error}

    async def scan(self, on, active=True):
        self._scan_on = bool(on)
        self._scan_active = active
        if self._attempt is not None:
            return  # no scanning while a connect is pending; connect() resumes it
        if on:
            self._start_scan()
        else:
            # Always ask: BTstack may have resumed a scan we believe stopped, and stopping
            # a scan that is not running is no error on either stack.
            try:
                self.ble.gap_scan(None)
            except OSError as e:
                raise BleError("scan stop failed: %s" % e)
            self._scanning = False

    def _start_scan(self):
        if self._scanning:
            return
        try:
            self.ble.gap_scan(_SCAN_FOREVER, 100000, 50000, self._scan_active)
        except OSError as e:
            if e.args and e.args[0] == _EALREADY:
                self._scanning = True
                return
            raise BleError("scan failed: %s" % e)
        self._scanning = True

    async def connect(self, addr, timeout_ms=10000):
        addr = bytes(addr)
        async with self.connect_lock:  # one attempt at a time (the stacks refuse a second)
            self.flush_bonds()
            att = self._attempt = [addr, None, Flag(), False]
            try:
                try:
                    # NimBLE: ble_gap_connect duration; BTstack: the supervision timeout (ms / 10).
                    self.ble.gap_connect(addr[0], addr[1:], timeout_ms)
                except OSError as e:
                    raise BleError("connect failed: %s" % e)
                self._scanning = False  # stopped (NimBLE) or paused (BTstack) by the connect
                try:
                    await wait_ms(att[2].wait(), timeout_ms + 1000)
                except asyncio.TimeoutError:
                    pass
                if att[1] is None:
                    await self._cancel(att)
            finally:
                self._attempt = None
                if self._scan_on:
                    try:
                        self._start_scan()
                    except BleError as e:
                        self.scan_errors += 1
                        self.last_error = str(e)
        conn = att[1]
        if conn is None:
            raise BleError("connect to device timed out")
        if conn.broken:
            raise BleError("link lost while connecting")
        return conn

    async def _cancel(self, att):
        # BTstack never ends an attempt by itself (its gap_connect timeout is only the supervision
        # timeout); NimBLE may have ended it already (then the cancel fails: fine). Wait for the
        # stack's word that it ended, so that it cannot end the next attempt.
        att[3] = True
        try:
            self.ble.gap_connect(None)
        except OSError:
            return
        try:
            await wait_ms(att[2].wait(), _CANCEL_WAIT_MS)
        except asyncio.TimeoutError:
            pass
        conn = att[1]
        if conn is not None:  # connected just as we gave up: nobody will use this link
            att[1] = None
            conn._break("connect timed out")

    async def bond_delete(self, addr):
        b = self.bonds
        if b is not None:
            b.delete(bytes(addr))
