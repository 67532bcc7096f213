# hub.ble.native (the boards' BLE) against a scripted stand-in for the
# `bluetooth` module (tests/fw/fakebt): discovery with CCCDs, reads, ATT
# errors, notifications into the FIFO, pairing with keys kept sealed, and
# the link dropping under a pending procedure. Both runtimes.

import asyncio
import os
import sys

sys.path.insert(0, (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/fakebt")

from fwtest import raises

from hub.ble import BleError
from hub.ble.bonds import BondStore
import bluetooth  # noqa: E402 - the stand-in
from hub.ble import native

ADDR = b"\x00\xc0\xff\xee\x00\x00\x01"
BONDS = "/tmp/samband-test-bonds-%d" % os.getpid() if hasattr(os, "getpid") else "/tmp/samband-test-bonds"


def run(coro):
    return asyncio.run(coro)


def test_discover_read_write_notify():
    c = native.Central()

    async def main():
        await c.scan(True)
        ev = c.events.get_nowait()
        assert ev[0] == "adv" and ev[1] == ADDR and ev[3] == b"\x03\x03\x08\x18"
        conn = await c.connect(ADDR)
        assert await conn.exchange_mtu() == 185
        svcs = await conn.discover()
        assert [s.uuid for s in svcs] == [0x180A, 0x1808]
        meas, racp = svcs[1].chars
        assert (meas.uuid, meas.handle, meas.cccd) == (0x2A18, 8, 9)
        assert (racp.uuid, racp.handle, racp.cccd) == (0x2A52, 11, 12)
        assert svcs[0].chars[0].cccd == 0
        assert await conn.read(3) == b"Acme"
        e = None
        try:
            await conn.read(8)
        except BleError as x:
            e = x
        assert e is not None and "0x05" in str(e)
        await conn.subscribe(9, 1)
        assert c.ble.writes[-1] == (9, b"\x01\x00")
        c._irq(18, (conn.handle, 8, memoryview(b"\x01\x02")))
        ev = c.events.get_nowait()
        assert ev == ("notify", conn.handle, 8, b"\x01\x02") and isinstance(ev[3], bytes)
        await conn.disconnect()
        assert c.events.get_nowait()[0] == "disc"

    run(main())


def test_pairing_keeps_keys_sealed():
    try:
        os.remove(BONDS)
    except OSError:
        pass
    bonds = BondStore(BONDS, b"k" * 32)
    c = native.Central(bonds)

    async def main():
        conn = await c.connect(ADDR)
        res = await conn.pair()
        assert res["encrypted"] and res["bonded"] and res["key_size"] == 16

    run(main())
    assert c.ble.secrets == [True]
    raw = open(BONDS, "rb").read()
    assert b"LTK-0123456789abcdef" not in raw  # sealed, not plaintext
    again = BondStore(BONDS, b"k" * 32)
    assert c._secret_get(1, 0, None) == b"LTK-0123456789abcdef"
    assert len(again) == 1
    assert BondStore(BONDS, b"x" * 32).damaged == 1  # another hub key cannot open it
    os.remove(BONDS)


def test_link_lost_fails_the_pending_procedure():
    c = native.Central()

    async def main():
        conn = await c.connect(ADDR)
        c.ble.gattc_read = lambda h, v: c._irq(8, (h, 0, b"\xc0\xff\xee\x00\x00\x01"))
        e = None
        try:
            await conn.read(3)
        except BleError as x:
            e = x
        assert e is not None

    run(main())
