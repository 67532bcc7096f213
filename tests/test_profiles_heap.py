"""Each profile decodes on the MicroPython unix port under the ESP32 heap
(100 KB), in a fresh process holding only what a hub holds: the profile
registry, the profile's module and its helpers (tests/fw/profile_heap_check.py)."""

import pytest

MODULES = ["timefmt", "glucose", "racp", "cgm", "heart_rate", "blood_pressure", "plx", "thermometer",
           "weight", "battery", "devinfo", "polar_pmd"]


@pytest.mark.parametrize("module", MODULES)
def test_profile_decodes_within_the_heap(mpy, module):
    p = mpy(["profile_heap_check.py", module], heap="100k")
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode == 0 and out.startswith("ok "), out[-2000:]
