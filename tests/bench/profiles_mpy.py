# Profile decoding costs on the MicroPython unix port (run by bench_profiles.py):
#     micropython profiles_mpy.py speed      -> ECG and glucose timings, heap growth
#     micropython profiles_mpy.py ram MODULE -> heap held by one profile module
# Prints "name: value unit" lines.

import gc
import sys
import time

from fwtest import live

from hub import profiles as P
from hub import reading as R

DEV = b"\x00\x11\x22\x33\x44\x55\x66"
ECG_RATE = 130
H10_SAMPLES = 73  # samples per PMD notification from an H10 at the default large MTU


def ecg_frame(n, ts=123456789012345678):
    b = bytearray(10 + 3 * n)
    for i in range(8):
        b[1 + i] = (ts >> (8 * i)) & 0xFF
    x = 1
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        v = (x >> 7) % 4000 - 2000  # uV
        v &= 0xFFFFFF
        b[10 + 3 * i] = v & 0xFF
        b[11 + 3 * i] = (v >> 8) & 0xFF
        b[12 + 3 * i] = v >> 16
    return bytes(b)


GLUCOSE = bytes.fromhex("1B0100E307021B0B0A1EFBFF1E00120501")


def per_call_us(fn, arg, n):
    fn(arg)
    gc.collect()
    t = time.ticks_us()
    for _ in range(n):
        fn(arg)
    return time.ticks_diff(time.ticks_us(), t) / n


def alloc_per_call(fn, arg, n):
    fn(arg)
    gc.collect()
    gc.disable()
    try:
        a = gc.mem_alloc()
        for _ in range(n):
            fn(arg)
        return (gc.mem_alloc() - a) / n
    finally:
        gc.enable()
        gc.collect()


def figure(name, value, unit=""):
    if isinstance(value, float):
        value = "%.4g" % value
    print(("%s: %s %s" % (name, value, unit)).rstrip())


def speed():
    from hub.profiles import polar_pmd as M
    frame = ecg_frame(H10_SAMPLES)
    frame2 = ecg_frame(2 * H10_SAMPLES)
    dec = lambda d: P.decode(P.PMD_DATA, d)  # noqa: E731
    buf = [0] * 256
    into = lambda d: M.decode_into(d, buf)  # noqa: E731
    us = per_call_us(dec, frame, 2000)
    figure("ecg decode per frame (%d samples)" % H10_SAMPLES, us, "us")
    figure("ecg decode per sample", us / H10_SAMPLES, "us")
    frame_s = H10_SAMPLES / ECG_RATE
    figure("ecg real-time factor (130 Hz H10 stream)", frame_s * 1e6 / us, "x")
    us_into = per_call_us(into, frame, 2000)
    figure("ecg decode_into per frame (preallocated, no reading)", us_into, "us")
    a1 = alloc_per_call(dec, frame, 5)
    a2 = alloc_per_call(dec, frame2, 5)
    figure("ecg heap allocated per frame (%d samples)" % H10_SAMPLES, a1, "bytes")
    figure("ecg heap allocated per extra sample (the list slot)", (a2 - a1) / H10_SAMPLES, "bytes")
    figure("ecg heap allocated per frame by decode_into", alloc_per_call(into, frame, 200), "bytes")
    # 10-minute streams decoded and dropped: the heap comes back to where it was
    n = 10 * 60 * ECG_RATE // H10_SAMPLES
    held = []
    for _ in range(2):
        before = live()
        t = time.ticks_us()
        for _ in range(n):
            dec(frame)
        dt = time.ticks_diff(time.ticks_us(), t)
        gc.collect()
        held.append(gc.mem_alloc() - before)
    figure("ecg 10 min stream (%d frames) decoded in" % n, dt / 1000, "ms")
    figure("ecg heap held after a 10 min stream (first, second)", "%d, %d" % (held[0], held[1]), "bytes")

    g = lambda d: P.decode(0x2A18, d)  # noqa: E731
    figure("glucose record decode", per_call_us(g, GLUCOSE, 2000), "us")
    seq = [0]

    def full(d):
        seq[0] += 1
        for r in P.decode(0x2A18, d):
            R.encode(R.complete(r, seq[0], DEV, [1, seq[0]]))
    figure("glucose record decode + complete + CBOR", per_call_us(full, GLUCOSE, 1000), "us")
    figure("glucose heap allocated per record decode", alloc_per_call(g, GLUCOSE, 20), "bytes")
    figure("glucose context decode", per_call_us(lambda d: P.decode(0x2A34, d), bytes.fromhex(
        "FF 0000 B3 03 6400 04 12 3C00 32 04 D2F4 59F1".replace(" ", "")), 1000), "us")


def ram(module):
    base = live()
    P._module(module)
    gc.collect()
    figure("heap held by profile %s (with its helpers)" % module, gc.mem_alloc() - base, "bytes")


if __name__ == "__main__":
    if sys.argv[1] == "speed":
        speed()
    else:
        ram(sys.argv[2])
