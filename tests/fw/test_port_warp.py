# The virtual hub's clock warp as hub.ports.unix.Port reads it (VirtualHub.warp writes it):
# the value twice in a host file opened before "/" became the flash. The port exists
# only on MicroPython (time.ticks_add); under CPython these tests have nothing to run.
import os
import sys
import time

from fwtest import IS_MPY


def _port(path):
    from hub.ports.unix import Port
    sys.modules["_vhub_warp"] = open(path, "rb")
    try:
        return Port({"name": "vhub"})
    finally:
        del sys.modules["_vhub_warp"]


def _write(path, first, second=None):
    with open(path, "wb") as f:
        f.write(first.to_bytes(8, "little") + (first if second is None else second).to_bytes(8, "little"))


def _wait_next_ms():
    # the port reads the file again only once a real ms has passed
    t = time.ticks_ms()
    while time.ticks_ms() == t:
        pass


def test_the_warp_moves_ticks_and_the_host_clock_and_a_torn_value_is_ignored():
    if not IS_MPY:
        return
    path = "/tmp/samband-warp-%d" % time.ticks_us()
    try:
        _write(path, 0)
        p = _port(path)
        t0, u0 = p.ticks_ms(), p.utc_ms()
        hour = 3600 * 1000
        _write(path, hour)
        _wait_next_ms()
        assert 0 <= time.ticks_diff(p.ticks_ms(), t0) - hour < 1000
        assert 0 <= p.utc_ms() - u0 - hour < 1000  # the host's clock (NTP) moved with it
        _write(path, 5 * hour, 2 * hour)  # halves that disagree: a read torn by the host's write
        _wait_next_ms()
        assert time.ticks_diff(p.ticks_ms(), t0) - hour < 1000  # the last good value stays
        _write(path, 5 * hour)
        _wait_next_ms()
        assert 0 <= time.ticks_diff(p.ticks_ms(), t0) - 5 * hour < 1000
    finally:
        os.remove(path)


def test_without_a_warp_file_the_clock_is_the_hosts():
    if not IS_MPY:
        return
    from hub.ports.unix import Port
    p = Port({"name": "vhub"})
    assert abs(time.ticks_diff(p.ticks_ms(), time.ticks_ms())) <= 1
    assert abs(p.utc_ms() - time.time_ns() // 1000000) <= 1000
