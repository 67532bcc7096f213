"""Profile decoding costs: ECG frames and glucose records on the MicroPython
unix port under the ESP32 heap (100 KB) -- time per frame and per record,
the real-time factor of a 130 Hz Polar H10 stream, heap allocated per
frame and per extra sample (one list slot: nothing is allocated per
sample), and the heap each profile module holds once loaded -- plus the
same decoders on CPython for comparison."""

import sys

from benchlib import FW_TESTS, figure, run_mpy, timed

MODULES = ["glucose", "racp", "cgm", "heart_rate", "blood_pressure", "plx", "thermometer", "weight",
           "battery", "devinfo", "timefmt", "polar_pmd"]


def _cpython():
    sys.path.insert(0, str(FW_TESTS))
    from hub import profiles as P
    sys.path.insert(0, str(FW_TESTS.parent / "bench"))
    from profiles_mpy import GLUCOSE, H10_SAMPLES, ecg_frame  # plain helpers, import fine on CPython
    frame = ecg_frame(H10_SAMPLES)
    n = 2000
    t = timed(lambda: [P.decode(P.PMD_DATA, frame) for _ in range(n)])
    figure("cpython ecg decode per frame (%d samples)" % H10_SAMPLES, t / n * 1e6, "us")
    t = timed(lambda: [P.decode(0x2A18, GLUCOSE) for _ in range(n)])
    figure("cpython glucose record decode", t / n * 1e6, "us")


def main():
    print(run_mpy(["profiles_mpy.py", "speed"], heap="100k"), end="", flush=True)
    for m in MODULES:
        print(run_mpy(["profiles_mpy.py", "ram", m], heap="100k"), end="", flush=True)
    _cpython()


if __name__ == "__main__":
    main()
