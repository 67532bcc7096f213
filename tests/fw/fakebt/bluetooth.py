# A stand-in for MicroPython's `bluetooth` module, so that hub.ble.native
# (written for the boards) runs on the unix port in tests. It answers GATT
# procedures from a small scripted peripheral by calling the IRQ handler
# with the tuples the real stack delivers (MicroPython docs, bluetooth).

_SERVICES = [  # (start, end, uuid, [(value_handle, props, uuid, cccd or 0)])
    (1, 5, b"\x0a\x18", [(3, 0x02, b"\x29\x2a", 0)]),                      # DIS: manufacturer
    (6, 12, b"\x08\x18", [(8, 0x10, b"\x18\x2a", 9), (11, 0x28, b"\x52\x2a", 12)]),  # glucose: meas, RACP
]
VALUES = {3: b"Acme"}


class UUID:
    pass


class BLE:
    def __init__(self):
        self.irqh = None
        self.writes = []
        self.secrets = []
        self.paired = 0

    def active(self, *a):
        return True

    def config(self, *a, **kw):
        if a and a[0] == "mac":
            return (0, b"\x11\x22\x33\x44\x55\x66")
        return None

    def irq(self, h):
        self.irqh = h

    def gap_scan(self, *a):
        if a and a[0] is not None:
            self.irqh(5, (0, b"\xc0\xff\xee\x00\x00\x01", 0, -40, b"\x03\x03\x08\x18"))

    def gap_connect(self, t, addr, timeout):
        self.irqh(7, (1, t, addr))

    def gap_disconnect(self, conn):
        self.irqh(8, (conn, 0, b"\xc0\xff\xee\x00\x00\x01"))

    def gattc_exchange_mtu(self, conn):
        self.irqh(21, (conn, 185))

    def gattc_discover_services(self, conn):
        for start, end, uuid, _ in _SERVICES:
            self.irqh(9, (conn, start, end, uuid))
        self.irqh(10, (conn, 0))

    def gattc_discover_characteristics(self, conn, start, end):
        for s, e, u, chars in _SERVICES:
            if s == start:
                for vh, props, cu, _ in chars:
                    self.irqh(11, (conn, vh - 1, vh, props, cu))
        self.irqh(12, (conn, 0))

    def gattc_discover_descriptors(self, conn, start, end):
        for s, e, u, chars in _SERVICES:
            for vh, props, cu, cccd in chars:
                if cccd and start <= cccd <= end:
                    self.irqh(13, (conn, cccd, b"\x02\x29"))
        self.irqh(14, (conn, 0))

    def gattc_read(self, conn, handle):
        if handle in VALUES:
            self.irqh(15, (conn, handle, VALUES[handle]))
            self.irqh(16, (conn, handle, 0))
        else:
            self.irqh(16, (conn, handle, 0x05))  # insufficient authentication

    def gattc_write(self, conn, handle, data, mode=0):
        self.writes.append((handle, bytes(data)))
        if mode:
            self.irqh(17, (conn, handle, 0))

    def gap_pair(self, conn):
        self.paired += 1
        self.secrets.append(self.irqh(30, (1, b"\x00\xc0\xff\xee\x00\x00\x01", b"LTK-0123456789abcdef")))
        self.irqh(28, (conn, 1, 0, 1, 16))
