# The BLE event FIFO: bounded, never replaces an older event, counts drops,
# keeps room for notifications. Runs on both runtimes.

import asyncio

from fwtest import raises

from hub.ble import Fifo, addr_parse, addr_str, uuid_str


def test_order_and_bounds():
    f = Fifo(8)
    for i in range(8):
        assert f.put(("notify", 1, 3, bytes([i])))
    assert not f.put(("notify", 1, 3, b"x"))
    assert f.dropped == 1 and f.high_water == 8
    got = [f.get_nowait()[3][0] for _ in range(8)]
    assert got == list(range(8))  # the oldest survive; the new one was dropped
    assert f.get_nowait() is None


def test_adverts_yield_to_notifications():
    f = Fifo(8)
    for _i in range(6):
        assert f.put(("adv", b"\x00" * 7, -50, b"", b""))
    assert not f.put(("adv", b"\x00" * 7, -50, b"", b""))
    assert f.dropped_adv == 1
    assert f.put(("notify", 1, 3, b"a")) and f.put(("notify", 1, 3, b"b"))
    assert not f.put(("notify", 1, 3, b"c"))
    assert f.dropped == 1


def test_wraps_around_many_times():
    f = Fifo(5)
    out = []
    for i in range(1000):
        f.put(("notify", 0, 0, i))
        if i % 3 == 0:
            out.append(f.get_nowait()[3])
    while len(f):
        out.append(f.get_nowait()[3])
    assert out == sorted(out) and len(set(out)) == len(out)
    assert f.dropped + len(out) == 1000


def test_async_get_waits_for_put():
    f = Fifo(4)
    got = []

    async def consumer():
        for _ in range(3):
            got.append((await f.get())[3])

    async def producer():
        for i in range(3):
            await asyncio.sleep(0)
            f.put(("notify", 0, 0, i))

    async def main():
        t = asyncio.create_task(consumer())
        await producer()
        await asyncio.wait_for(t, 2)

    asyncio.run(main())
    assert got == [0, 1, 2]


def test_addresses_and_uuids():
    a = addr_parse("C0:11:22:33:44:55/r")
    assert a == b"\x01\xc0\x11\x22\x33\x44\x55"
    assert addr_str(a) == "C0:11:22:33:44:55/r"
    assert addr_str(addr_parse("00:11:22:33:44:55")) == "00:11:22:33:44:55"
    for bad in ("", "00:11", "00:11:22:33:44:5G", "001122334455"):
        raises(ValueError, addr_parse, bad)
    assert uuid_str(0x2A18) == "2a18"
    assert uuid_str(bytes(range(16))) == "00010203-0405-0607-0809-0a0b0c0d0e0f"


def test_link_events_are_never_dropped():
    # issue 18 item 13: a full FIFO dropped "disc", and the device task waited forever
    f = Fifo(4)
    for i in range(4):
        assert f.put(("notify", 1, 3, bytes([i])))
    assert f.put(("disc", 1, 8)) and f.put(("enc", 2, True))
    assert not f.put(("notify", 2, 3, b"x"))  # data still yields to nothing: dropped, counted
    assert f.dropped == 1 and len(f) == 6
    assert f.get_nowait()[0] == "notify"
    assert not f.put(("notify", 2, 3, b"y"))  # the freed slot went to the held "disc"
    got = []
    while len(f):
        got.append(f.get_nowait()[0])
    assert got == ["notify", "notify", "notify", "disc", "enc"]
    assert f.get_nowait() is None
