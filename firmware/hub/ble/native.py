# BLE on the boards (ESP32 with NimBLE, Pico W with BTstack) through
# MicroPython's low-level `bluetooth` module, without aioble: aioble keeps
# only the latest notification per characteristic (micropython-lib #934)
# and stores bond keys as plain JSON. Here the IRQ handler copies what the
# stack hands it, puts it in our bounded FIFO (events) or in the pending
# operation's slot, and sets a flag; the awaiting task does the rest.
# Bond keys go to the hub's sealed BondStore through the secret IRQs.
#
# Imported only on boards (the unix port has no `bluetooth` module).

import asyncio

import bluetooth

from hub.ble import BleError, Char, Fifo, Flag, Service, wait_ms

try:
    from micropython import const
except ImportError:  # CPython runs this module against a stand-in `bluetooth` in tests
    def const(x):
        return x

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


def _uuid(u):
    b = bytes(u)  # little-endian on the air
    if len(b) == 2:
        return b[0] | b[1] << 8
    return bytes(reversed(b))


class _Op:
    # One outstanding GATT procedure per connection, as the stacks allow.
    def __init__(self):
        self.flag = Flag()
        self.items = []
        self.status = None
        self.value = None


class Connection:
    def __init__(self, central, handle, addr):
        self.central = central
        self.handle = handle
        self.addr = addr
        self.mtu = 23
        self.op = None
        self.encrypted = False
        self.enc_info = None
        self.lock = asyncio.Lock()

    async def _run(self, start, timeout_ms):
        async with self.lock:
            op = self.op = _Op()
            try:
                start()
                await wait_ms(op.flag.wait(), timeout_ms)
            except asyncio.TimeoutError:
                raise BleError("GATT procedure timed out")
            except OSError as e:
                raise BleError("GATT procedure failed: %s" % e)
            finally:
                self.op = None
            if op.status:
                raise BleError("att error 0x%02x" % op.status)
            return op

    async def exchange_mtu(self, mtu=247):
        ble = self.central.ble
        ble.config(mtu=mtu)
        op = await self._run(lambda: ble.gattc_exchange_mtu(self.handle), 5000)
        self.mtu = op.value or self.mtu
        return self.mtu

    async def discover(self, timeout_ms=20000):
        ble = self.central.ble
        h = self.handle
        op = await self._run(lambda: ble.gattc_discover_services(h), timeout_ms)
        services = []
        for start, end, uuid in op.items:
            cop = await self._run(lambda: ble.gattc_discover_characteristics(h, start, end), timeout_ms)
            chars = []
            raw = cop.items
            for i, (vh, props, cuuid) in enumerate(raw):
                last = raw[i + 1][0] - 2 if i + 1 < len(raw) else end
                cccd = 0
                if props & 0x30 and last > vh:
                    dop = await self._run(lambda: ble.gattc_discover_descriptors(h, vh + 1, last), timeout_ms)
                    for dh, duuid in dop.items:
                        if duuid == _CCCD:
                            cccd = dh
                chars.append(Char(cuuid, vh, props, cccd))
            services.append(Service(uuid, start, end, chars))
        return services

    async def pair(self, bond=True, mitm=False, lesc=True, timeout_ms=30000):
        ble = self.central.ble
        ble.config(bond=bond, mitm=mitm, le_secure=lesc)
        op = await self._run(lambda: ble.gap_pair(self.handle), timeout_ms)
        enc, auth, bonded, key_size = op.value
        return {"encrypted": bool(enc), "bonded": bool(bonded), "lesc": bool(lesc), "key_size": key_size}

    async def read(self, handle, timeout_ms=10000):
        ble = self.central.ble
        op = await self._run(lambda: ble.gattc_read(self.handle, handle), timeout_ms)
        return op.value or b""

    async def write(self, handle, data, response=True, timeout_ms=10000):
        ble = self.central.ble
        if not response:
            ble.gattc_write(self.handle, handle, data, 0)
            return
        await self._run(lambda: ble.gattc_write(self.handle, handle, data, 1), timeout_ms)

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
        self.ble = bluetooth.BLE()
        self.ble.active(True)
        self.ble.config(bond=True, le_secure=True, mitm=False, io=3)  # io 3: no input, no output
        self.address = bytes(self.ble.config("mac")[1])
        self.conns = {}
        self._connecting = None
        self.ble.irq(self._irq)

    # -------------------------------------------------------- IRQ handler
    def _irq(self, event, data):
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
        elif event == _IRQ_PERIPHERAL_CONNECT:
            h, t, addr = data
            c = self._connecting
            if c is not None and c[0] == bytes((t,)) + bytes(addr):
                c[1].append(h)
                c[2].set()
        elif event == _IRQ_PERIPHERAL_DISCONNECT:
            h, t, addr = data
            conn = self.conns.pop(h, None)
            if conn is not None and conn.op is not None:
                conn.op.status = 0x0E  # unlikely error: the link is gone
                conn.op.flag.set()
            c = self._connecting
            if c is not None and h == 0xFFFF:  # connect attempt timed out
                c[2].set()
            self.events.put(("disc", h, 0))
        elif event == _IRQ_GET_SECRET:
            return self._secret_get(*data)
        elif event == _IRQ_SET_SECRET:
            return self._secret_set(*data)
        else:
            self._op_event(event, data)

    def _op_event(self, event, data):
        conn = self.conns.get(data[0])
        op = conn.op if conn is not None else None
        if op is None:
            if event == _IRQ_ENCRYPTION_UPDATE and conn is not None:
                conn.encrypted = bool(data[1])
                self.events.put(("enc", data[0], bool(data[1])))
            return
        if event == _IRQ_GATTC_SERVICE_RESULT:
            op.items.append((data[1], data[2], _uuid(data[3])))
        elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
            # (conn, end_handle or def_handle, value_handle, properties, uuid)
            op.items.append((data[2], data[3], _uuid(data[4])))
        elif event == _IRQ_GATTC_DESCRIPTOR_RESULT:
            op.items.append((data[1], _uuid(data[2])))
        elif event == _IRQ_GATTC_READ_RESULT:
            op.value = bytes(data[2])
        elif event in (_IRQ_GATTC_SERVICE_DONE, _IRQ_GATTC_CHARACTERISTIC_DONE, _IRQ_GATTC_DESCRIPTOR_DONE):
            op.status = data[1]
            op.flag.set()
        elif event == _IRQ_GATTC_READ_DONE or event == _IRQ_GATTC_WRITE_DONE:
            op.status = data[2]
            op.flag.set()
        elif event == _IRQ_MTU_EXCHANGED:
            op.value = data[1]
            op.flag.set()
        elif event == _IRQ_ENCRYPTION_UPDATE:
            conn.encrypted = bool(data[1])
            op.value = (data[1], data[2], data[3], data[4])
            op.flag.set()
            self.events.put(("enc", data[0], bool(data[1])))

    # ---------------------------------------------- bond keys (sealed store)
    def _secret_key(self, sec_type, key):
        return bytes((0xB0 | sec_type,)) + bytes(key)

    def _secret_get(self, sec_type, index, key):
        b = self.bonds
        if b is None:
            return None
        if key is None:
            i = 0
            for k, v in b.all():
                if k[0] == 0xB0 | sec_type:
                    if i == index:
                        return v
                    i += 1
            return None
        return b.get(self._secret_key(sec_type, key))

    def _secret_set(self, sec_type, key, value):
        b = self.bonds
        if b is None:
            return False
        k = self._secret_key(sec_type, key)
        if value is None:
            b.delete(k)
        else:
            b.set(k, bytes(value))
        return True

    # ----------------------------------------------------------- the API
    async def scan(self, on, active=True):
        if on:
            self.ble.gap_scan(_SCAN_FOREVER, 100000, 50000, active)
        else:
            self.ble.gap_scan(None)

    async def connect(self, addr, timeout_ms=10000):
        ev = Flag()
        self._connecting = (bytes(addr), [], ev)
        try:
            self.ble.gap_connect(addr[0], addr[1:], timeout_ms)
            await wait_ms(ev.wait(), timeout_ms + 1000)
        except asyncio.TimeoutError:
            raise BleError("connect to device timed out")
        except OSError as e:
            raise BleError("connect failed: %s" % e)
        finally:
            got = self._connecting[1]
            self._connecting = None
        if not got:
            raise BleError("connect to device timed out")
        conn = Connection(self, got[0], bytes(addr))
        self.conns[got[0]] = conn
        return conn

    async def bond_delete(self, addr):
        b = self.bonds
        if b is not None:
            for k, v in b.all():
                if bytes(addr[1:]) in k:
                    b.delete(k)
