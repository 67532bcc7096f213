# Polar H10 PMD (hub.profiles.polar_pmd): control point requests and
# responses, and ECG data frames (Polar SDK test payloads), the reading's
# timing semantics, and decoding without allocating per sample. Runs on
# both runtimes.

import gc

from fwtest import IS_MPY, Rand, raises

from hub import profiles as P
from hub import reading as R
from hub.profiles import ProfileError
from hub.profiles import polar_pmd as M
from hub.reading import CTX, DTS, MDC, PERIOD, UNIT, VAL

DEV = b"\x01\xa0\x9e\x1a\x00\x00\x01"


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def frame(samples, ts=2000000000, ftype=0, mtype=0):
    return P.encode(P.PMD_DATA, {"type": mtype, "timestamp": ts, "frame_type": ftype, "samples": samples})


def test_requests():
    assert M.start_ecg() == h("02 00 00 01 82 00 01 01 0E 00")   # 130 Hz, 14 bit (reference 10)
    assert M.get_settings(M.ECG) == h("01 00")
    assert M.stop(M.ECG) == h("03 00")
    assert M.start(M.ACC, {M.SAMPLE_RATE: 25, M.RESOLUTION: 16, M.RANGE: 2}) == \
        h("02 02 00 01 19 00 01 01 10 00 02 01 02 00")
    assert M.start(M.ECG, {M.SAMPLE_RATE: 130}, offline=True)[:2] == h("02 80")
    assert M.parse_request(M.start_ecg()) == {"op": 2, "type": 0, "offline": False,
                                              "settings": {0: [130], 1: [14]}}


def test_control_point_responses():
    # Polar SDK BlePmdClientControlPointResponseTest
    f = P.parse(P.PMD_CP, h("F0 01 02 00 00 FF FF FF"))
    assert f["kind"] == "response" and (f["op"], f["type"], f["status"], f["more"]) == (1, 2, 0, 0)
    assert f["params"] == h("FF FF FF")
    f = P.parse(P.PMD_CP, h("F0 01 06 07 00"))
    assert f == {"kind": "response", "op": 1, "type": 6, "status": 7, "more": 0, "params": b""}
    assert M.STATUS[f["status"]] == "invalid resolution"
    assert P.parse(P.PMD_CP, h("F0 02 00 00")) == {"kind": "response", "op": 2, "type": 0, "status": 0,
                                                   "params": b""}   # start acknowledged
    # settings from PmdSettingTest: 52 Hz, 16 bit, ranges 245/500/1000/2000, 3 channels
    f = P.parse(P.PMD_CP, h("F0 01 02 00 00") + h("00 01 34 00 01 01 10 00 02 04 F5 00 F4 01 E8 03 D0 07 04 01 03"))
    assert f["settings"] == {0: [52], 1: [16], 2: [245, 500, 1000, 2000], 4: [3]}
    f = P.parse(P.PMD_CP, h("F0 01 00 00 00") + h("03 02 FF FF FF FF FF 00 00 00 01 01 0E 00"))
    assert f["settings"] == {3: [-1, 255], 1: [14]}
    f = P.parse(P.PMD_CP, h("F0 01 00 00 00 05 01 0000803F"))
    assert f["settings"] == {5: [1.0]}
    raises(ProfileError, P.parse, P.PMD_CP, h("F0 01 00 00 00 00 02 82 00"))   # second value missing
    # sensor stopped streams by itself; feature bitmap read
    assert P.parse(P.PMD_CP, h("01 01 02")) == {"kind": "stopped", "types": [1, 2]}
    assert P.parse(P.PMD_CP, h("01")) == {"kind": "stopped", "types": []}
    assert P.parse(P.PMD_CP, h("0F 05 00")) == {"kind": "features", "features": 5, "size": 2}  # ECG + ACC
    raises(ProfileError, P.parse, P.PMD_CP, b"")
    raises(ProfileError, P.parse, P.PMD_CP, h("F0 02 00"))
    assert P.decode(P.PMD_CP, h("F0 02 00 00 00")) == []


def test_ecg_frame_published():
    # Polar SDK EcgDataTest "type 0": timestamp 2000000000 ns, samples 02 80 FF, 02 80 00
    data = h("00 0094357700000000 00 0280FF 028000")
    assert P.parse(P.PMD_DATA, data) == {"type": 0, "tflags": 0, "timestamp": 2000000000, "frame_type": 0,
                                         "compressed": False, "samples": [-32766, 32770]}
    (r,) = P.decode(P.PMD_DATA, data)
    assert r == {MDC: 131328, VAL: [-32766, 32770], UNIT: "uV", PERIOD: 7692, DTS: 946684802, CTX: {"ns": 0}}
    full = R.complete(r, 5, DEV, [1, 99])
    assert R.decode(R.encode(full)) == full
    # timestamp of BlePmdClientTest: 0x0D23D3A472316C38 ns since 2000
    data = h("00 386C3172A4D3230D 00 000000")
    assert P.parse(P.PMD_DATA, data)["timestamp"] == 946833049921875000
    (r,) = P.decode(P.PMD_DATA, data, rate=130)
    assert r[DTS] == 946684800 + 946833049 and r[CTX]["ns"] == 921875000


def test_ecg_timing_semantics():
    # the frame timestamp is the time of the LAST sample
    n = 73
    ts = 5 * 10 ** 9 + 123456789
    (r,) = P.decode(P.PMD_DATA, frame(list(range(-36, 37)), ts))
    last = (r[DTS] - 946684800) * 10 ** 9 + r[CTX]["ns"]
    assert last == ts
    first = last - (n - 1) * r[PERIOD] * 1000
    assert first == ts - 72 * 7692000
    assert P.decode(P.PMD_DATA, frame([1], ts), rate=200)[0][PERIOD] == 5000
    raises(ProfileError, P.decode, P.PMD_DATA, frame([1], ts), rate=0)


def test_sample_range():
    lims = [-0x800000, 0x7FFFFF, -1, 0, 1]
    (r,) = P.decode(P.PMD_DATA, frame(lims))
    assert r[VAL] == lims
    raises(ProfileError, frame, [0x800000])


def test_rejected_frames():
    ok = frame([1, 2, 3])
    raises(ProfileError, P.decode, P.PMD_DATA, ok[:9])           # header truncated
    e = raises(ProfileError, P.decode, P.PMD_DATA, ok[:10])      # no samples
    assert e.offset == 10
    e = raises(ProfileError, P.decode, P.PMD_DATA, ok[:-1])      # last sample truncated
    assert e.offset == 16
    for ft in (1, 2, 3, 0x80):                                   # other ECG frame types
        bad = bytearray(ok)
        bad[9] = ft
        e = raises(ProfileError, P.decode, P.PMD_DATA, bytes(bad))
        assert e.offset == 9 and "frame type" in str(e)
    acc = h("02 0100000000000000 01 010203040506")                # ACC: not decoded, carried raw
    assert P.decode(P.PMD_DATA, acc) == []
    assert P.parse(P.PMD_DATA, acc)["data"] == h("010203040506")


def test_viper_kernel_on_micropython_matches_its_twin():
    assert M._VIPER == IS_MPY
    rnd = Rand(3)
    for n in (1, 2, 73, 200):
        data = frame([rnd.below(1 << 24) - (1 << 23) for _ in range(n)])
        a, b = [0] * n, [0] * n
        M._fill(data, 10, n, a)
        M._fill_py(data, 10, n, b)
        assert a == b


def test_decode_into_allocates_nothing():
    rnd = Rand(11)
    samples = [rnd.below(1 << 24) - (1 << 23) for _ in range(73)]
    data = frame(samples, 7 * 10 ** 9)
    buf = [0] * 80
    assert M.decode_into(data, buf) == 73 and M.timestamp(data) == 7 * 10 ** 9
    assert buf[:73] == samples
    if IS_MPY:
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            for _ in range(200):
                M.decode_into(data, buf)
                M.timestamp(data)
            grew = gc.mem_alloc() - before
        finally:
            gc.enable()
        assert grew == 0, grew
    raises(ProfileError, M.decode_into, data, [0] * 10)


def test_decode_allocates_per_frame_not_per_sample():
    if not IS_MPY:
        return
    small = frame(list(range(10)))
    big = frame(list(range(100)))

    def cost(data):
        P.decode(P.PMD_DATA, data)  # warm the registry cache
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            for _ in range(4):
                P.decode(P.PMD_DATA, data)
            return (gc.mem_alloc() - before) // 4
        finally:
            gc.enable()
    a, b = cost(small), cost(big)
    # 90 more samples cost only their 90 slots in the one list (8 bytes each on 64-bit, 16-byte blocks)
    assert b - a <= 90 * 8 + 16, (a, b)
