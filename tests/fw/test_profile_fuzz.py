# Fuzzing every characteristic with random and mutated bytes: decode
# raises nothing but ProfileError, and whatever it returns are readings
# hub.reading accepts. Runs on both runtimes. (tests/test_profiles_
# hypothesis.py fuzzes further on CPython; tests/test_profiles_heap.py
# runs each profile in a fresh unix port under the 100 KB heap.)

from fwtest import Rand

# This module loads every profile in turn; MicroPython never frees the
# interned names (qstrs) of a module it has dropped, so one process that
# walks all of them needs more than a hub that talks to a few devices.
MPY_HEAP = "200k"

from hub import profiles as P
from hub import reading as R
from hub.profiles import ProfileError
from profile_seeds import SEEDS

DEV = b"\x00\x11\x22\x33\x44\x55\x66"

def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def each_uuid():
    """Every characteristic, grouped by profile module, dropping the modules between groups:
    a hub holds the codecs of the devices it talks to, not all of them at once."""
    last = None
    for uuid in sorted(SEEDS, key=lambda u: P.module_of(u)):
        if P.module_of(uuid) != last:
            P.forget()
            last = P.module_of(uuid)
        yield uuid
    P.forget()


def check(uuid, data, **opts):
    try:
        rs = P.decode(uuid, data, **opts)
    except ProfileError as e:
        assert e.uuid == P.norm(uuid)
        assert e.offset is None or 0 <= e.offset <= len(data), (P.label(uuid), data, e.offset, str(e))
        return False
    for r in rs:
        R.complete(r, 1, DEV, [1, 1])
    return True


def test_every_seed_decodes():
    assert sorted(SEEDS, key=str) == sorted(P.supported(), key=str)
    for uuid in each_uuid():
        assert check(uuid, h(SEEDS[uuid])), P.label(uuid)


def test_random_bytes():
    rnd = Rand(2024)
    for uuid in each_uuid():
        for _ in range(150):
            check(uuid, rnd.bytes(rnd.below(24)))
        for _ in range(20):  # a plausible first octet, then noise
            data = h(SEEDS[uuid])[:1] + rnd.bytes(rnd.below(40))
            check(uuid, data)
            check(uuid, data, crc=True)
            check(uuid, data, crc=False)


def test_truncations_and_extensions_of_seeds():
    rnd = Rand(5)
    for uuid in each_uuid():
        seed = h(SEEDS[uuid])
        for k in range(len(seed)):
            check(uuid, seed[:k])
        check(uuid, seed + rnd.bytes(1 + rnd.below(4)))


def test_mutated_seeds():
    rnd = Rand(99)
    ok = 0
    for uuid in each_uuid():
        seed = h(SEEDS[uuid])
        for _ in range(120):
            b = bytearray(seed)
            for _ in range(1 + rnd.below(3)):
                i = rnd.below(len(b))
                k = rnd.below(3)
                if k == 0:
                    b[i] ^= 1 << rnd.below(8)
                elif k == 1:
                    b[i] = rnd.below(256)
                else:
                    b = b[:i] + bytearray([rnd.below(256)]) + b[i:]
            ok += check(uuid, bytes(b))
    assert ok > 1000   # most mutations are still valid payloads: the decoders were really exercised
