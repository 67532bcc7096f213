# SHA-512 (FIPS 180-4) for the hub: MicroPython's hashlib has no SHA-512
# on any port, and Ed25519 (RFC 8032) hashes with it; so does the release
# check (hub/release.py), which hashes whole images as they stream in.
#
# A 64-bit word is two 32-bit halves (high, low) in an array("I"): the
# state is 16 halves, the round constants 160, the message schedule a
# 160-half scratch. The compression of whole 128-byte blocks is one
# kernel call: viper on MicroPython (_vsha512.py), where every value
# stays in machine words (a 64-bit Python int would be a heap-allocated
# big int on a board, and on the unix port above 2**62); _compress_py
# below elsewhere (CPython, tests), which computes the same halves.
# The constants are the first 64 bits of the fractional parts of the
# cube roots (K) and square roots (H) of the first 80 (8) primes,
# computed with integer roots and checked in tests/fw/test_sha512.py.

from array import array

_K = array("I", (
    0x428a2f98, 0xd728ae22, 0x71374491, 0x23ef65cd, 0xb5c0fbcf, 0xec4d3b2f,
    0xe9b5dba5, 0x8189dbbc, 0x3956c25b, 0xf348b538, 0x59f111f1, 0xb605d019,
    0x923f82a4, 0xaf194f9b, 0xab1c5ed5, 0xda6d8118, 0xd807aa98, 0xa3030242,
    0x12835b01, 0x45706fbe, 0x243185be, 0x4ee4b28c, 0x550c7dc3, 0xd5ffb4e2,
    0x72be5d74, 0xf27b896f, 0x80deb1fe, 0x3b1696b1, 0x9bdc06a7, 0x25c71235,
    0xc19bf174, 0xcf692694, 0xe49b69c1, 0x9ef14ad2, 0xefbe4786, 0x384f25e3,
    0x0fc19dc6, 0x8b8cd5b5, 0x240ca1cc, 0x77ac9c65, 0x2de92c6f, 0x592b0275,
    0x4a7484aa, 0x6ea6e483, 0x5cb0a9dc, 0xbd41fbd4, 0x76f988da, 0x831153b5,
    0x983e5152, 0xee66dfab, 0xa831c66d, 0x2db43210, 0xb00327c8, 0x98fb213f,
    0xbf597fc7, 0xbeef0ee4, 0xc6e00bf3, 0x3da88fc2, 0xd5a79147, 0x930aa725,
    0x06ca6351, 0xe003826f, 0x14292967, 0x0a0e6e70, 0x27b70a85, 0x46d22ffc,
    0x2e1b2138, 0x5c26c926, 0x4d2c6dfc, 0x5ac42aed, 0x53380d13, 0x9d95b3df,
    0x650a7354, 0x8baf63de, 0x766a0abb, 0x3c77b2a8, 0x81c2c92e, 0x47edaee6,
    0x92722c85, 0x1482353b, 0xa2bfe8a1, 0x4cf10364, 0xa81a664b, 0xbc423001,
    0xc24b8b70, 0xd0f89791, 0xc76c51a3, 0x0654be30, 0xd192e819, 0xd6ef5218,
    0xd6990624, 0x5565a910, 0xf40e3585, 0x5771202a, 0x106aa070, 0x32bbd1b8,
    0x19a4c116, 0xb8d2d0c8, 0x1e376c08, 0x5141ab53, 0x2748774c, 0xdf8eeb99,
    0x34b0bcb5, 0xe19b48a8, 0x391c0cb3, 0xc5c95a63, 0x4ed8aa4a, 0xe3418acb,
    0x5b9cca4f, 0x7763e373, 0x682e6ff3, 0xd6b2b8a3, 0x748f82ee, 0x5defb2fc,
    0x78a5636f, 0x43172f60, 0x84c87814, 0xa1f0ab72, 0x8cc70208, 0x1a6439ec,
    0x90befffa, 0x23631e28, 0xa4506ceb, 0xde82bde9, 0xbef9a3f7, 0xb2c67915,
    0xc67178f2, 0xe372532b, 0xca273ece, 0xea26619c, 0xd186b8c7, 0x21c0c207,
    0xeada7dd6, 0xcde0eb1e, 0xf57d4f7f, 0xee6ed178, 0x06f067aa, 0x72176fba,
    0x0a637dc5, 0xa2c898a6, 0x113f9804, 0xbef90dae, 0x1b710b35, 0x131c471b,
    0x28db77f5, 0x23047d84, 0x32caab7b, 0x40c72493, 0x3c9ebe0a, 0x15c9bebc,
    0x431d67c4, 0x9c100d4c, 0x4cc5d4be, 0xcb3e42b6, 0x597f299c, 0xfc657e2a,
    0x5fcb6fab, 0x3ad6faec, 0x6c44198c, 0x4a475817,
))

_H = (
    0x6a09e667, 0xf3bcc908, 0xbb67ae85, 0x84caa73b, 0x3c6ef372, 0xfe94f82b,
    0xa54ff53a, 0x5f1d36f1, 0x510e527f, 0xade682d1, 0x9b05688c, 0x2b3e6c1f,
    0x1f83d9ab, 0xfb41bd6b, 0x5be0cd19, 0x137e2179,
)

_M64 = 0xFFFFFFFFFFFFFFFF


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M64


def _compress_py(st, data, nblocks, w, k):
    """The twin of _vsha512.compress: fold nblocks 128-byte blocks of data into st."""
    s = [(st[2 * i] << 32) | st[2 * i + 1] for i in range(8)]
    kk = [(k[2 * i] << 32) | k[2 * i + 1] for i in range(80)]
    for b in range(nblocks):
        o = b << 7
        ww = [0] * 80
        for t in range(16):
            q = o + 8 * t
            x = 0
            for j in range(8):
                x = (x << 8) | data[q + j]
            ww[t] = x
        for t in range(16, 80):
            x = ww[t - 15]
            s0 = _rotr(x, 1) ^ _rotr(x, 8) ^ (x >> 7)
            x = ww[t - 2]
            s1 = _rotr(x, 19) ^ _rotr(x, 61) ^ (x >> 6)
            ww[t] = (ww[t - 16] + s0 + ww[t - 7] + s1) & _M64
        a, b_, c, d, e, f, g, h = s
        for t in range(80):
            t1 = (h + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)) + ((e & f) ^ (~e & g)) + kk[t] + ww[t]) & _M64
            t2 = ((_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)) + ((a & b_) ^ (a & c) ^ (b_ & c))) & _M64
            h, g, f, e, d, c, b_, a = g, f, e, (d + t1) & _M64, c, b_, a, (t1 + t2) & _M64
        for i, v in enumerate((a, b_, c, d, e, f, g, h)):
            s[i] = (s[i] + v) & _M64
    for i in range(8):
        st[2 * i] = s[i] >> 32
        st[2 * i + 1] = s[i] & 0xFFFFFFFF


try:
    from hub.crypto._vsha512 import compress as _compress
except ImportError:  # CPython, or no native emitter
    _compress = _compress_py


class sha512:
    """hashlib-style SHA-512: sha512(data).update(more).digest(); digest() may be called more than once."""

    digest_size = 64
    block_size = 128

    def __init__(self, data=None, compress=None):
        self._st = array("I", _H)
        self._w = array("I", bytes(4 * 160))
        self._buf = bytearray(128)
        self._fill = 0
        self._n = 0
        self._run = compress or _compress
        if data is not None:
            self.update(data)

    def update(self, data):
        """Add data (bytes, bytearray or memoryview) to the message."""
        n = len(data)
        self._n += n
        mv = memoryview(data)
        pos = 0
        if self._fill:
            take = min(128 - self._fill, n)
            self._buf[self._fill:self._fill + take] = mv[:take]
            self._fill += take
            pos = take
            if self._fill < 128:
                return
            self._run(self._st, self._buf, 1, self._w, _K)
            self._fill = 0
        whole = (n - pos) >> 7
        if whole:
            self._run(self._st, mv[pos:], whole, self._w, _K)
            pos += whole << 7
        rest = n - pos
        if rest:
            self._buf[0:rest] = mv[pos:]
            self._fill = rest

    def digest(self):
        """The 64-byte hash of everything added so far (the object stays usable)."""
        st = array("I", self._st)
        buf = bytearray(256)
        f = self._fill
        buf[0:f] = self._buf[0:f]
        buf[f] = 0x80
        blocks = 1 if f < 112 else 2
        bits = self._n * 8
        end = blocks << 7
        for i in range(16):  # the 128-bit big-endian message length in bits
            buf[end - 1 - i] = bits & 0xFF
            bits >>= 8
        self._run(st, buf, blocks, self._w, _K)
        out = bytearray(64)
        for i in range(16):
            v = st[i]
            out[4 * i] = v >> 24
            out[4 * i + 1] = (v >> 16) & 0xFF
            out[4 * i + 2] = (v >> 8) & 0xFF
            out[4 * i + 3] = v & 0xFF
        return bytes(out)

    def hexdigest(self):
        return self.digest().hex()
