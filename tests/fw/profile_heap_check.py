# Decode one profile's characteristics in a fresh unix port: its seed
# payloads, every truncation of them and random bytes. Run by
# tests/test_profiles_heap.py under the ESP32 heap budget:
#     micropython profile_heap_check.py glucose
# Prints "ok <bytes in use with the profile loaded, after a collection>".

import gc
import sys

from hub import profiles as P
from hub import reading as R
from hub.profiles import ProfileError


def main(module):
    import profile_seeds
    seeds = {}
    for u in profile_seeds.SEEDS:
        if P.module_of(u) == module:
            seeds[u] = bytes.fromhex(profile_seeds.SEEDS[u].replace(" ", ""))
    del sys.modules["profile_seeds"]
    del profile_seeds
    assert seeds, module
    gc.collect()
    import micropython
    micropython.mem_info(1) if "-v" in sys.argv else None
    dev = b"\x00\x11\x22\x33\x44\x55\x66"
    x = 12345
    n = 0
    for uuid in seeds:
        seed = seeds[uuid]
        cases = [seed[:k] for k in range(len(seed) + 1)]
        for _ in range(100):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            cases.append(seed[:1] + bytes((x >> (i % 24)) & 0xFF for i in range(x % 30)))
        for data in cases:
            try:
                for r in P.decode(uuid, data):
                    R.complete(r, 1, dev, [1, 1])
                    n += 1
            except ProfileError:
                pass
        gc.collect()
    print("ok", gc.mem_alloc(), n)


main(sys.argv[1])
