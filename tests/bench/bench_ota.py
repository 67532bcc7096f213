"""Ed25519 verification, SHA-512 and release checks on the unix port next to
libsodium (pynacl) on the same machine: the figures of docs/ota.md.

The unix port runs the compiled firmware (the viper SHA-512 kernel; Ed25519
in big-int arithmetic) under the hub's 100 KB heap. Heap: "alloc" is what
one operation allocates with the collector off (garbage included, an upper
bound); "peak" is the smallest -X heapsize in which the operation still
runs, minus the smallest in which the same script runs without it (found
by bisection to 256 bytes), so it counts live data and fragmentation."""

import os

import benchlib
import nacl.bindings as nb
from benchlib import BENCH, figure, firmware_tree, per_call, run_mpy

HEAP = "100k"
SEED = bytes(range(32))


def make_inputs():
    """ota_bench_sig.bin: a 1 KB message and its signature; ota_bench_release.bin: a 64 KB app release."""
    import sys
    sys.path.insert(0, str(BENCH.parent))
    from samband.device import release
    pk, sk = nb.crypto_sign_seed_keypair(SEED)
    msg = bytes(i & 0xFF for i in range(1024))
    sig = nb.crypto_sign(msg, sk)[:64]
    image = os.urandom(65536)
    rel = release.assemble(release.manifest("vhub", "app", "1.0.0", "0.0.0", image, 0), image, SEED)
    paths = (BENCH / "ota_bench_sig.bin", BENCH / "ota_bench_release.bin")
    paths[0].write_bytes(len(msg).to_bytes(4, "little") + pk + sig + msg)
    paths[1].write_bytes(pk + rel)
    return paths, pk, msg, sig, rel


def smallest_heap(what):
    """The smallest heap (bytes) in which `ota_bench_mpy.py peak WHAT` runs."""
    return benchlib.smallest_heap(["ota_bench_mpy.py", "peak", what], 8 * 1024, 256 * 1024)


def main():
    firmware_tree()
    paths, pk, msg, sig, rel = make_inputs()
    try:
        out = run_mpy(["ota_bench_mpy.py"], heap=HEAP)
        hub = {}
        for line in out.splitlines():
            name, _, value = line.partition(" ")
            hub[name] = float(value)
        base = smallest_heap("none")
        peaks = {w: smallest_heap(w) - base for w in ("verify1k", "hash64k", "release64k")}
    finally:
        for p in paths:
            p.unlink(missing_ok=True)

    sod = per_call(lambda: nb.crypto_sign_open(sig + msg, pk))
    figure("ed25519 verify 1 KB unix port", hub["verify_1k_us"] / 1000, "ms")
    figure("ed25519 verify 1 KB libsodium", sod * 1000, "ms")
    figure("ed25519 verify ratio", hub["verify_1k_us"] / 1e6 / sod, "x")
    figure("ed25519 verify 1 KB heap peak unix port", peaks["verify1k"], "bytes")
    figure("sha512 64 KB streamed (2 KB chunks) unix port", hub["hash_64k_us"] / 1000, "ms")
    figure("sha512 64 KB streamed heap peak unix port", peaks["hash64k"], "bytes")
    figure("sha512 64 KB streamed allocated (collector off)", int(hub["hash_64k_alloc"]), "bytes")
    big = bytes(65536)
    sod_h = per_call(lambda: nb.crypto_hash_sha512(big))
    figure("sha512 throughput unix port (viper)", 4 / (hub["sha512_4k_viper_us"] / 1e6), "KB/s")
    figure("sha512 throughput unix port (pure Python twin)", 4 / (hub["sha512_4k_pure_us"] / 1e6), "KB/s")
    figure("sha512 throughput libsodium", 64 / sod_h, "KB/s")
    figure("release check 64 KB app (signature + streamed hash) unix port", hub["release_64k_us"] / 1000, "ms")
    figure("release check 64 KB heap peak unix port", peaks["release64k"], "bytes")
    figure("release overhead (header + manifest + signature)", len(rel) - 65536, "bytes")


if __name__ == "__main__":
    main()
