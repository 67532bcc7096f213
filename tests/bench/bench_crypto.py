"""hub.crypto and hub.seal on the unix port next to libsodium (pynacl) on
the same machine: X25519, sealing throughput, heap.

The unix port runs the compiled firmware (viper kernels) under the hub's
100 KB heap; libsodium's figures are pynacl calls timed in CPython (so
they include pynacl's call overhead). A ratio is hub time / libsodium
time. Heap: bytes one operation allocates on the hub's GC heap with the
collector off, next to tracemalloc's peak for the same pynacl call."""

import hashlib
import hmac
import os
import tracemalloc

from benchlib import figure, per_call, run_mpy
from nacl import bindings as nb

HEAP = "100k"


def traced(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main():
    out = run_mpy(["crypto_bench_mpy.py"], heap=HEAP)
    hub = {}
    for line in out.splitlines():
        name, _, value = line.partition(" ")
        hub[name] = float(value)

    k, nonce = os.urandom(32), os.urandom(24)
    pk = nb.crypto_scalarmult_base(os.urandom(32))
    sod_x = per_call(lambda: nb.crypto_scalarmult(k, pk))
    figure("x25519 unix port", hub["x25519_us"] / 1000, "ms")
    figure("x25519 libsodium", sod_x * 1000, "ms")
    figure("x25519 ratio", hub["x25519_us"] / 1e6 / sod_x, "x")
    peak_x = traced(lambda: nb.crypto_scalarmult(k, pk))
    figure("x25519 heap unix port", int(hub["x25519_heap"]), "bytes")
    figure("x25519 heap libsodium (tracemalloc peak)", peak_x, "bytes")
    figure("x25519 heap ratio", hub["x25519_heap"] / max(peak_x, 1), "x")
    sod_epoch = per_call(lambda: (nb.crypto_box_beforenm(pk, nb.crypto_scalarmult_base(k)),
                                  hmac.new(k, bytes(62), hashlib.sha256).digest()))
    figure("epoch start unix port (2 X25519 + HMAC, counter in RAM)", hub["epoch_us"] / 1000, "ms")
    figure("epoch start libsodium (2 X25519 + HMAC)", sod_epoch * 1000, "ms")
    figure("epoch start ratio", hub["epoch_us"] / 1e6 / sod_epoch, "x")

    for size in (64, 1024, 4096):
        m = os.urandom(size)
        sod = per_call(lambda: nb.crypto_box_easy_afternm(m, nonce, k))
        kbs_hub = size / 1024 / (hub[f"seal_into_{size}_us"] / 1e6)
        kbs_alloc = size / 1024 / (hub[f"seal_{size}_us"] / 1e6)
        kbs_sod = size / 1024 / sod
        figure(f"seal {size} B unix port (seal_into)", kbs_hub, "KB/s")
        figure(f"seal {size} B unix port (seal)", kbs_alloc, "KB/s")
        figure(f"seal {size} B libsodium (crypto_box_easy_afternm)", kbs_sod, "KB/s")
        figure(f"seal {size} B ratio", kbs_sod / kbs_hub, "x slower")
        peak = traced(lambda: nb.crypto_box_easy_afternm(m, nonce, k))
        figure(f"seal {size} B heap unix port (seal)", int(hub[f"seal_{size}_heap"]), "bytes")
        figure(f"seal {size} B heap unix port (seal_into)", int(hub[f"seal_into_{size}_heap"]), "bytes")
        figure(f"seal {size} B heap libsodium (tracemalloc peak)", peak, "bytes")
        figure(f"seal {size} B heap ratio", hub[f"seal_{size}_heap"] / max(peak, 1), "x")

    buf = bytes(4096)
    sod_s = per_call(lambda: nb.crypto_secretbox_easy(buf, nonce, k))
    figure("xsalsa20 4 KB unix port", 4 / (hub["xsalsa20_4096_us"] / 1e6), "KB/s")
    figure("poly1305 4 KB unix port", 4 / (hub["poly1305_4096_us"] / 1e6), "KB/s")
    figure("secretbox+open 4 KB unix port", 4 / (hub["open_4096_us"] / 1e6), "KB/s")
    figure("secretbox 4 KB libsodium", 4 / sod_s, "KB/s")
    figure("heap free after the benchmark", int(hub["heap_free_after"]), f"bytes of {HEAP}")


if __name__ == "__main__":
    main()
