# The unix-port half of bench_ota.py: prints "name value" lines.
#   micropython ota_bench_mpy.py            timings, and bytes a hash allocates
#   micropython ota_bench_mpy.py peak WHAT  only runs WHAT once (verify1k, hash64k, release64k, none):
#                                           bench_ota.py finds the smallest heap it runs in
# "alloc" is what one hash allocates with the collector off (Ed25519 allocates more
# big-int garbage than the 100 KB heap holds, so only its peak is measured);
# peaks come from the smallest -X heapsize that still runs WHAT, minus that of "none".
import gc
import sys
import time

from fwtest import allocated

from hub import release
from hub.crypto import ed25519, sha512

PK = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")


def us(fn, n):
    t = time.ticks_us()
    for _i in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t) / n


def inputs():
    with open("ota_bench_sig.bin", "rb") as f:
        n = int.from_bytes(f.read(4), "little")
        pk = f.read(32)
        sig = f.read(64)
        msg = f.read(n)
    return pk, sig, msg


def check_release():
    """The 64 KB release streamed from its file, as from a download: never whole in the heap."""
    with open("ota_bench_release.bin", "rb") as f:
        rel_pk = f.read(32)
        return release.verify_stream(f, rel_pk, "vhub", "0.1.0")


def hash64k():
    h = sha512.sha512()
    chunk = bytearray(2048)
    for _i in range(32):
        h.update(chunk)
    return h.digest()


def main():
    pk, sig, msg = inputs()
    if len(sys.argv) > 2:
        what = sys.argv[2]
        gc.collect()
        if what == "verify1k":
            assert ed25519.verify(pk, msg, sig)
        elif what == "hash64k":
            hash64k()
        elif what == "release64k":
            check_release()
        print("ok")
        return
    assert ed25519.verify(pk, msg, sig)
    print("verify_1k_us", us(lambda: ed25519.verify(pk, msg, sig), 20))
    print("hash_64k_us", us(hash64k, 10))
    print("hash_64k_alloc", allocated(hash64k))
    buf = bytes(4096)
    print("sha512_4k_viper_us", us(lambda: sha512.sha512(buf).digest(), 50))
    print("sha512_4k_pure_us", us(lambda: sha512.sha512(buf, sha512._compress_py).digest(), 3))
    print("release_64k_us", us(check_release, 10))


main()
