# The unix-port half of bench_crypto.py: prints "name value" lines.
# Heap figures are the bytes one operation allocates with the collector
# off (an upper bound of its peak), measured under the hub's heap limit.
import gc
import time

from fwtest import MemCounter, allocated

from hub import seal
from hub.crypto import box, poly1305, salsa20, x25519


def us(fn, n):
    t = time.ticks_us()
    for i in range(n):
        fn(i)
    return time.ticks_diff(time.ticks_us(), t) / n


def main():
    k = bytes(range(32))
    u = x25519.scalarmult_base(bytes(range(1, 33)))
    print("x25519_us", us(lambda i: x25519.x25519(k, u), 20))
    print("x25519_heap", allocated(lambda: x25519.x25519(k, u)))
    sealer = seal.Sealer(b"bench-hub", k, (1, u), MemCounter())
    # a new epoch each time (set_receiver, even to the same key, starts one)
    print("epoch_us", us(lambda i: (sealer.set_receiver((1, u)), sealer.seal(10 * i + 1, b"x")), 5))
    for size in (64, 1024, 4096):
        buf = bytearray(size + 20)
        base = 1000000 * size
        sealer.seal_into(base, buf, size)  # the epoch exists: only sealing is timed
        n = 400 if size < 1024 else 60
        t = us(lambda i: sealer.seal_into(base + 1 + i, buf, size), n)
        print("seal_into_%d_us" % size, t)
        pt = bytes(size)
        t = us(lambda i: sealer.seal(base + 1000 + i, pt), n)
        print("seal_%d_us" % size, t)
        print("seal_%d_heap" % size, allocated(lambda: sealer.seal(base + 5000, pt)))
        print("seal_into_%d_heap" % size, allocated(lambda: sealer.seal_into(base + 5001, buf, size)))
    buf = bytearray(4096)
    st = salsa20.xsalsa20_state(k, bytes(24))
    print("xsalsa20_4096_us", us(lambda i: salsa20.stream_xor_into(st, buf, 4096), 50))
    print("poly1305_4096_us", us(lambda i: poly1305.poly1305(buf, k), 50))
    print("open_4096_us", us(lambda i: box.secretbox_open(box.secretbox(buf, bytes(24), k), bytes(24), k), 20))
    gc.collect()
    print("heap_free_after", gc.mem_free())


main()
