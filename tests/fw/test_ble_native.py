# hub.ble.native (the boards' BLE) against tests/fw/fakebt, the stand-in
# for MicroPython's `bluetooth` module, in both of its modes: "nimble"
# (ESP32) and "btstack" (Pico W). Each test runs in every mode it applies
# to; the "item N" notes refer to the defects listed in issue 18.
# Both runtimes (CPython and the unix port).

import asyncio
import os
import sys

sys.path.insert(0, (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/fakebt")

from fwtest import raises

from hub.ble import KEY_MISSING, BleError, Fifo
from hub.ble.bonds import BondStore
import bluetooth  # noqa: E402 - the stand-in
from hub.ble import native

ADDR = b"\x00\xc0\xff\xee\x00\x00\x01"
ADDR2 = b"\x01\xc0\xff\xee\x00\x00\x02"
MODES = ("nimble", "btstack")
MPY_HEAP = "256k"  # this file is compiled on the unix port, in the heap; the firmware is .mpy
BONDS = "/tmp/samband-test-bonds-%d" % os.getpid() if hasattr(os, "getpid") else "/tmp/samband-test-bonds"


def run(coro):
    return asyncio.run(coro)


def each_mode(fn):
    """A test run once under each stack's behaviour (NimBLE, BTstack), given the mode."""
    def test():
        for mode in MODES:
            fn(mode)
    return test


def setup(mode, peers=None, bonds=None):
    ble = bluetooth.reset(mode, peers)
    native._schedule = bluetooth.schedule  # the scheduler as the stack locks it (see the stand-in)
    return ble, native.Central(bonds)


def fresh_bonds():
    try:
        os.remove(BONDS)
    except OSError:
        pass
    return BondStore(BONDS, b"k" * 32)


def expect_ble_error(coro):
    async def go():
        try:
            await coro
        except BleError as e:
            return e
        except Exception as e:  # noqa: BLE001 - reported as the failure it is
            raise AssertionError("expected BleError, got %s: %s" % (type(e).__name__, e)) from e
        raise AssertionError("expected BleError, nothing raised")
    return go()


@each_mode
def test_discover_read_write_notify(mode):
    ble, c = setup(mode)

    async def main():
        await c.scan(True)
        await ble.settle()
        ev = c.events.get_nowait()
        assert ev[0] == "adv" and ev[1] == ADDR and ev[3] == b"\x03\x03\x08\x18", (mode, ev)
        conn = await c.connect(ADDR)
        assert await conn.exchange_mtu() == 185
        svcs = await conn.discover()
        assert [s.uuid for s in svcs] == [0x180A, 0x1808]
        meas, racp = svcs[1].chars
        assert (meas.uuid, meas.handle, meas.cccd) == (0x2A18, 8, 9), (mode, meas)
        assert (racp.uuid, racp.handle, racp.cccd) == (0x2A52, 11, 12), (mode, racp)
        assert svcs[0].chars[0].cccd == 0
        assert await conn.read(3) == b"Acme"
        e = await expect_ble_error(conn.read(8))
        assert "0x02" in str(e)
        await conn.subscribe(9, 1)
        assert ble.writes[-1] == (9, b"\x01\x00")
        ble.notify(conn.handle, 8, b"\x01\x02")
        ev = c.events.get_nowait()
        while ev[0] == "adv":
            ev = c.events.get_nowait()
        assert ev == ("notify", conn.handle, 8, b"\x01\x02") and isinstance(ev[3], bytes)
        await conn.disconnect()
        await ble.settle()
        assert c.events.get_nowait()[0] == "disc"

    run(main())
    assert ble.crashed == [] and ble.irqh is not None, mode


@each_mode
def test_connect_while_scanning_keeps_the_handler_and_the_scan(mode):
    # items 1 and 11: NimBLE stops the scan inside gap_connect and raises SCAN_DONE with an
    # empty tuple; the handler must take it, and the scan the collector wants must go on.
    ble, c = setup(mode)

    async def main():
        await c.scan(True)
        conn = await c.connect(ADDR)
        await ble.settle()
        assert ble.crashed == [] and ble.irqh is not None, (mode, ble.crashed)
        assert ble.scanning, mode  # scanning again, without the collector asking twice
        ble.notify(conn.handle, 8, b"\x07")
        evs = [c.events.get_nowait() for _ in range(len(c.events))]
        assert ("notify", conn.handle, 8, b"\x07") in evs, mode
        await c.scan(False)
        assert not ble.scanning, mode

    run(main())


@each_mode
def test_scan_errors_are_ble_errors(mode):
    # item 11: a plain OSError from gap_scan ended the collector's scan task
    ble, c = setup(mode)

    def refuse(*a):
        raise OSError(19)
    ble.gap_scan = refuse
    run(expect_ble_error(c.scan(True)))


@each_mode
def test_cccd_is_found_after_the_value_handle(mode):
    # item 2: descriptor discovery starts at the value handle (the stacks search after it),
    # including a CCCD right after the value of the service's last characteristic.
    ble, c = setup(mode)

    async def main():
        conn = await c.connect(ADDR)
        svcs = await conn.discover()
        meas, racp = svcs[1].chars
        assert meas.cccd == 9 and racp.cccd == 12, (mode, meas, racp)

    run(main())


def test_btstack_build_has_no_bonding_but_collects():
    # item 3: the Pico W build refuses config(bond=...) and has no gap_pair
    ble, c = setup("btstack")
    assert c.bonding is False
    assert raises(ValueError, ble.config, bond=True)

    async def main():
        conn = await c.connect(ADDR)
        e = await expect_ble_error(conn.pair())
        assert "cannot bond" in str(e)
        assert await conn.read(3) == b"Acme"

    run(main())
    ble, c = setup("nimble")
    assert c.bonding is True


def test_pairing_keeps_keys_sealed_under_the_device_address():
    # items 5 and 9: the collector finds the bond by the device's address; keys are written
    # to flash outside the IRQ, sealed.
    bonds = fresh_bonds()
    ble, c = setup("nimble", bonds=bonds)
    in_irq = []
    save = bonds._save

    def spy():
        in_irq.append(ble.in_irq)
        save()
    bonds._save = spy

    async def main():
        conn = await c.connect(ADDR)
        res = await conn.pair()
        assert res["encrypted"] and res["bonded"] and res["key_size"] == 16

    run(main())
    assert ble.secrets == [True, True]
    assert in_irq and True not in in_irq, in_irq
    assert bonds.get(ADDR) is not None and len(bonds) == 1
    raw = open(BONDS, "rb").read()
    assert b"O" * 80 not in raw and b"P" * 80 not in raw  # sealed, not plaintext
    again = BondStore(BONDS, b"k" * 32)
    assert again.get(ADDR) == bonds.get(ADDR)
    key = ble.peers[0].lsb_key()
    assert c._secret_get(2, 0, None) == b"P" * 80 and c._secret_get(1, 0, key) == b"O" * 80
    assert BondStore(BONDS, b"x" * 32).damaged == 1  # another hub key cannot open it
    os.remove(BONDS)


def test_stored_bonds_reach_nimble_while_it_activates():
    # item 10: irq() before active(True), so NimBLE's look-ups at start-up are answered
    bonds = fresh_bonds()
    ble, c = setup("nimble", bonds=bonds)

    async def pair():
        conn = await c.connect(ADDR)
        await conn.pair()

    run(pair())
    ble, c = setup("nimble", bonds=BondStore(BONDS, b"k" * 32))
    assert ble.restored == [b"P" * 80], ble.restored
    os.remove(BONDS)


def test_lost_bond_is_reported_and_deleted():
    # item 4: ENCRYPTION_UPDATE has no status; with a stored bond "not encrypted" is a lost bond,
    # and bond_delete must remove NimBLE's keys for the device.
    bonds = fresh_bonds()
    peer = bluetooth.Peer(ADDR)
    ble, c = setup("nimble", [peer], bonds)

    async def main():
        conn = await c.connect(ADDR)
        await conn.pair()
        await conn.disconnect()
        await ble.settle()
        peer.knows_us = False  # the device was reset
        conn = await c.connect(ADDR)
        e = await expect_ble_error(conn.pair())
        assert e.reason == KEY_MISSING, e
        await c.bond_delete(ADDR)
        assert bonds.get(ADDR) is None
        assert c._secret_get(1, 0, peer.lsb_key()) is None
        res = await conn.pair()
        assert res["encrypted"] and bonds.get(ADDR) is not None

    run(main())
    os.remove(BONDS)


@each_mode
def test_peer_started_mtu_and_encryption_do_not_end_discovery(mode):
    # item 6: the peer's own MTU exchange / encryption arrive between discovery results
    peer = bluetooth.Peer(ADDR)
    peer.in_discovery = [("mtu",), ("enc",)]
    ble, c = setup(mode, [peer])

    async def main():
        conn = await c.connect(ADDR)
        svcs = await conn.discover()
        assert [s.uuid for s in svcs] == [0x180A, 0x1808], (mode, svcs)
        assert svcs[1].chars[1].cccd == 12
        assert await conn.exchange_mtu() == 185

    run(main())


@each_mode
def test_late_done_never_lands_in_the_next_procedure(mode):
    # item 6: the stack answers after our timeout (NimBLE waits 30 s); that answer must not be
    # taken for the next procedure's: the link is dropped on our timeout.
    peer = bluetooth.Peer(ADDR)
    ble, c = setup(mode, [peer])

    async def main():
        conn = await c.connect(ADDR)
        peer.hold = ("read",)
        await expect_ble_error(conn.read(3, timeout_ms=20))
        peer.hold = ()
        ble.release()  # the late READ_RESULT "Acme" + READ_DONE
        e = await expect_ble_error(conn.read(99))
        assert "timed out" in str(e) or "lost" in str(e), (mode, e)
        assert "disconnect" in ble.calls, mode
        await ble.settle()
        assert ble.crashed == []

    run(main())


@each_mode
def test_two_devices_connect_and_discover_at_once(mode):
    # items 7 and 8: one connect at a time, and (NimBLE) one discovery at a time across links
    ble, c = setup(mode, [bluetooth.Peer(ADDR), bluetooth.Peer(ADDR2)])

    async def one(addr):
        conn = await c.connect(addr)
        svcs = await conn.discover()
        return conn, svcs

    async def main():
        (a, sa), (b, sb) = await asyncio.gather(one(ADDR), one(ADDR2))
        assert a.handle != b.handle and a.addr == ADDR and b.addr == ADDR2
        assert sa[1].chars[0].cccd == 9 and sb[1].chars[0].cccd == 9, mode
        assert set(c.conns) == {a.handle, b.handle}

    run(main())


@each_mode
def test_connect_timeout_ends_the_attempt(mode):
    # item 12: BTstack's gap_connect timeout is only a supervision timeout: the attempt must
    # be cancelled (gap_connect(None)), and its end must not disturb the next attempt.
    gone = bluetooth.Peer(ADDR, present=False)
    ble, c = setup(mode, [gone, bluetooth.Peer(ADDR2)])

    async def main():
        await expect_ble_error(c.connect(ADDR, timeout_ms=30))
        assert ble.connecting is None, mode
        conn = await c.connect(ADDR2)
        await ble.settle()
        assert conn.addr == ADDR2 and conn.handle in c.conns and not conn.broken, mode

    run(main())
    if mode == "btstack":
        assert "connect-cancel" in ble.calls


@each_mode
def test_full_fifo_keeps_the_disconnect(mode):
    # item 13: a device task waits for its "disc"; a full FIFO must not lose it
    ble, c = setup(mode)
    c.events = Fifo(8)

    async def main():
        conn = await c.connect(ADDR)
        for i in range(10):
            ble.notify(conn.handle, 8, bytes([i]))
        ble.drop(conn.handle)
        evs = []
        while len(c.events):
            evs.append(c.events.get_nowait())
        assert evs[-1][0] == "disc" and len(evs) == 9, (mode, evs)

    run(main())


@each_mode
def test_link_lost_fails_the_pending_procedure(mode):
    peer = bluetooth.Peer(ADDR)
    ble, c = setup(mode, [peer])

    async def main():
        conn = await c.connect(ADDR)
        peer.hold = ("read",)

        async def cut():
            await asyncio.sleep(0)
            ble.drop(conn.handle)
        asyncio.create_task(cut())
        e = await expect_ble_error(conn.read(3))
        assert "lost" in str(e), (mode, e)

    run(main())


@each_mode
def test_handler_never_raises(mode):
    # a malformed event is counted; MicroPython would disable a handler that raised, for good
    ble, c = setup(mode)
    assert c._irq(9, ()) is None
    assert c.irq_errors == 1 and ble.irqh is not None
    assert c._irq(27, (0, 1, 2, 3, 4)) is None  # a connection update: not ours, counted
    assert c.stats()["stray"] == 1 and c.stats()["irq_errors"] == 1


def test_a_board_that_cannot_bond_names_the_kinds_it_leaves_out():
    # item 3: app.py starts the collector and uplink anyway, and says what it cannot collect
    from hub import app
    devices = [{"kind": "glucose"}, {"kind": "hr"}, {"kind": "cgm"}]
    ble, c = setup("btstack")
    assert app.ble_problems(c, devices) == ["BLE: this board cannot bond; not collected: cgm, glucose"]
    assert app.ble_problems(c, [{"kind": "hr"}]) == []
    ble, c = setup("nimble")
    assert app.ble_problems(c, devices) == []


def test_a_flush_inside_a_save_is_not_lost():
    # a scheduled flush can run while a task's save is under way (bytecode boundaries)
    bonds = fresh_bonds()
    save = bonds._save
    calls = []

    def nested():
        calls.append(1)
        if len(calls) == 1:
            bonds.set(ADDR2, b"second", save=False)
            bonds.flush()  # re-entered: must not write a half file, must not lose "second"
        save()
    bonds._save = nested
    bonds.set(ADDR, b"first")
    assert len(calls) == 2
    again = BondStore(BONDS, b"k" * 32)
    assert again.get(ADDR) == b"first" and again.get(ADDR2) == b"second"
    os.remove(BONDS)


def test_nimble_discovers_on_one_link_at_a_time():
    # item 8 alone: connects one after the other, then both links discover at once; NimBLE
    # allows one characteristic discovery for the whole stack (EBUSY otherwise)
    db = [(1, 5, b"\x0a\x18", [(3, 0x02, b"\x29\x2a", 0)]), (6, 9, b"\x0f\x18", [(8, 0x02, b"\x19\x2a", 0)])]
    ble, c = setup("nimble", [bluetooth.Peer(ADDR, db), bluetooth.Peer(ADDR2, db)])

    async def main():
        a = await c.connect(ADDR)
        b = await c.connect(ADDR2)
        sa, sb = await asyncio.gather(a.discover(), b.discover())
        assert [s.uuid for s in sa] == [0x180A, 0x180F] and [s.uuid for s in sb] == [0x180A, 0x180F]

    run(main())
