# Poly1305 (Bernstein), the one-time authenticator of NaCl's secretbox:
# crypto_onetimeauth_poly1305 in libsodium.
#
# Numbers mod p = 2**130 - 5 are ten 13-bit limbs (130 bits exactly), so
# that 2**130 folds back as 5 and every product and sum fits in 32 bits,
# which the boards' viper uint has:
#   h limbs <= 2**13 + 2**10 after each carry, r limbs < 2**13, s = 5r
#   < 5 * 2**13, so one column of h*r is below 10 * 9216 * 40955 + 2**19
#   < 3.8e9 < 2**32.
# The state is an array of 40 unsigned words: h at 0..9, r at 10..19,
# 5r at 20..29 (20 unused), scratch for the final reduction at 30..39. The kernel (viper twin in _vpoly.py) eats
# whole 16-byte blocks; the tail block is padded here. Only the final
# reduction and the addition of s run as plain Python, on small ints.

from array import array

from hub.crypto import CryptoError, ct

TAG_BYTES = 16


def _blocks_py(st, m, n, hibit):
    hb = hibit
    h0 = st[0]
    h1 = st[1]
    h2 = st[2]
    h3 = st[3]
    h4 = st[4]
    h5 = st[5]
    h6 = st[6]
    h7 = st[7]
    h8 = st[8]
    h9 = st[9]
    r0 = st[10]
    r1 = st[11]
    r2 = st[12]
    r3 = st[13]
    r4 = st[14]
    r5 = st[15]
    r6 = st[16]
    r7 = st[17]
    r8 = st[18]
    r9 = st[19]
    s1 = st[21]
    s2 = st[22]
    s3 = st[23]
    s4 = st[24]
    s5 = st[25]
    s6 = st[26]
    s7 = st[27]
    s8 = st[28]
    s9 = st[29]
    p = 0
    while p < n:
        h0 += ((m[p + 0]) | (m[p + 1]) << 8) & 0x1FFF
        h1 += (((m[p + 1]) | (m[p + 2]) << 8 | (m[p + 3]) << 16) >> 5) & 0x1FFF
        h2 += (((m[p + 3]) | (m[p + 4]) << 8) >> 2) & 0x1FFF
        h3 += (((m[p + 4]) | (m[p + 5]) << 8 | (m[p + 6]) << 16) >> 7) & 0x1FFF
        h4 += (((m[p + 6]) | (m[p + 7]) << 8 | (m[p + 8]) << 16) >> 4) & 0x1FFF
        h5 += (((m[p + 8]) | (m[p + 9]) << 8) >> 1) & 0x1FFF
        h6 += (((m[p + 9]) | (m[p + 10]) << 8 | (m[p + 11]) << 16) >> 6) & 0x1FFF
        h7 += (((m[p + 11]) | (m[p + 12]) << 8) >> 3) & 0x1FFF
        h8 += ((m[p + 13]) | (m[p + 14]) << 8) & 0x1FFF
        h9 += (((m[p + 14]) | (m[p + 15]) << 8 | hb << 16) >> 5) & 0x1FFF
        c = h0 >> 13
        h0 &= 0x1FFF
        h1 += c
        c = h1 >> 13
        h1 &= 0x1FFF
        h2 += c
        c = h2 >> 13
        h2 &= 0x1FFF
        h3 += c
        c = h3 >> 13
        h3 &= 0x1FFF
        h4 += c
        c = h4 >> 13
        h4 &= 0x1FFF
        h5 += c
        c = h5 >> 13
        h5 &= 0x1FFF
        h6 += c
        c = h6 >> 13
        h6 &= 0x1FFF
        h7 += c
        c = h7 >> 13
        h7 &= 0x1FFF
        h8 += c
        c = h8 >> 13
        h8 &= 0x1FFF
        h9 += c
        c = h9 >> 13
        h9 &= 0x1FFF
        h0 += c * 5
        c = h0 >> 13
        h0 &= 0x1FFF
        h1 += c
        d0 = (h0 * r0 + h1 * s9 + h2 * s8 + h3 * s7 + h4 * s6
              + h5 * s5 + h6 * s4 + h7 * s3 + h8 * s2 + h9 * s1)
        d1 = (h0 * r1 + h1 * r0 + h2 * s9 + h3 * s8 + h4 * s7
              + h5 * s6 + h6 * s5 + h7 * s4 + h8 * s3 + h9 * s2)
        d2 = (h0 * r2 + h1 * r1 + h2 * r0 + h3 * s9 + h4 * s8
              + h5 * s7 + h6 * s6 + h7 * s5 + h8 * s4 + h9 * s3)
        d3 = (h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s9
              + h5 * s8 + h6 * s7 + h7 * s6 + h8 * s5 + h9 * s4)
        d4 = (h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0
              + h5 * s9 + h6 * s8 + h7 * s7 + h8 * s6 + h9 * s5)
        d5 = (h0 * r5 + h1 * r4 + h2 * r3 + h3 * r2 + h4 * r1
              + h5 * r0 + h6 * s9 + h7 * s8 + h8 * s7 + h9 * s6)
        d6 = (h0 * r6 + h1 * r5 + h2 * r4 + h3 * r3 + h4 * r2
              + h5 * r1 + h6 * r0 + h7 * s9 + h8 * s8 + h9 * s7)
        d7 = (h0 * r7 + h1 * r6 + h2 * r5 + h3 * r4 + h4 * r3
              + h5 * r2 + h6 * r1 + h7 * r0 + h8 * s9 + h9 * s8)
        d8 = (h0 * r8 + h1 * r7 + h2 * r6 + h3 * r5 + h4 * r4
              + h5 * r3 + h6 * r2 + h7 * r1 + h8 * r0 + h9 * s9)
        d9 = (h0 * r9 + h1 * r8 + h2 * r7 + h3 * r6 + h4 * r5
              + h5 * r4 + h6 * r3 + h7 * r2 + h8 * r1 + h9 * r0)
        c = d0 >> 13
        d0 &= 0x1FFF
        d1 += c
        c = d1 >> 13
        d1 &= 0x1FFF
        d2 += c
        c = d2 >> 13
        d2 &= 0x1FFF
        d3 += c
        c = d3 >> 13
        d3 &= 0x1FFF
        d4 += c
        c = d4 >> 13
        d4 &= 0x1FFF
        d5 += c
        c = d5 >> 13
        d5 &= 0x1FFF
        d6 += c
        c = d6 >> 13
        d6 &= 0x1FFF
        d7 += c
        c = d7 >> 13
        d7 &= 0x1FFF
        d8 += c
        c = d8 >> 13
        d8 &= 0x1FFF
        d9 += c
        c = d9 >> 13
        d9 &= 0x1FFF
        d0 += c * 5
        c = d0 >> 13
        d0 &= 0x1FFF
        d1 += c
        h0 = d0
        h1 = d1
        h2 = d2
        h3 = d3
        h4 = d4
        h5 = d5
        h6 = d6
        h7 = d7
        h8 = d8
        h9 = d9
        p += 16
    st[0] = h0
    st[1] = h1
    st[2] = h2
    st[3] = h3
    st[4] = h4
    st[5] = h5
    st[6] = h6
    st[7] = h7
    st[8] = h8
    st[9] = h9

try:
    from hub.crypto._vpoly import blocks as _blocks
except ImportError:  # CPython, or no native emitter
    _blocks = _blocks_py


_CLAMP = b"\xff\xff\xff\x0f\xfc\xff\xff\x0f\xfc\xff\xff\x0f\xfc\xff\xff\x0f"


class Poly1305:
    """Incremental Poly1305 under a 32-byte one-time key: update(data)..., digest().

    One object can be reused for many messages with init(key), which is how
    boxes are sealed without allocating: the state is 40 words (h, r, 5r and
    room for the final reduction), the tail block and s are kept here."""

    def __init__(self, key=None):
        self._st = array("I", bytes(160))
        self._tail = bytearray(16)
        self._s = bytearray(16)
        self._n = 0  # bytes waiting in _tail
        if key is not None:
            self.init(key)

    def init(self, key):
        """Start a new message under key (its first 32 bytes: r, then s)."""
        if len(key) < 32:
            raise CryptoError("Poly1305 key must be 32 bytes, not %d" % len(key))
        st = self._st
        acc = 0
        nbits = 0
        i = 0
        for limb in range(10):  # clamped r -> ten 13-bit limbs
            while nbits < 13 and i < 16:
                acc |= (key[i] & _CLAMP[i]) << nbits
                nbits += 8
                i += 1
            st[limb] = 0
            st[10 + limb] = acc & 0x1FFF
            st[20 + limb] = 5 * (acc & 0x1FFF)
            acc >>= 13
            nbits -= 13
        for i in range(16):
            self._s[i] = key[16 + i]
        self._n = 0

    def update(self, data):
        mv = memoryview(data)
        n = len(mv)
        i = 0
        if self._n:
            take = min(16 - self._n, n)
            self._tail[self._n:self._n + take] = mv[0:take]
            self._n += take
            i = take
            if self._n < 16:
                return
            _blocks(self._st, self._tail, 16, 1)
            self._n = 0
        full = (n - i) & ~15
        if full:
            _blocks(self._st, mv[i:i + full], full, 1)
            i += full
        if i < n:
            self._tail[0:n - i] = mv[i:n]
            self._n = n - i

    def digest(self):
        out = bytearray(16)
        self.digest_into(out)
        return bytes(out)

    def digest_into(self, out, off=0):
        """Write the 16-byte tag to out[off:off+16]; the object then needs init() again."""
        st = self._st
        if self._n:
            t = self._tail
            t[self._n] = 1
            for i in range(self._n + 1, 16):
                t[i] = 0
            _blocks(st, t, 16, 0)
            self._n = 0
        for _ in range(3):  # fully carried: every limb < 2**13, h < 2**130
            c = 0
            for i in range(10):
                v = st[i] + c
                st[i] = v & 0x1FFF
                c = v >> 13
            st[0] += 5 * c
        # h mod p: g = h + 5 - 2**130 (at 30..39) is the answer iff h + 5 carries out of 2**130
        c = 5
        for i in range(10):
            v = st[i] + c
            st[30 + i] = v & 0x1FFF
            c = v >> 13
        keep = c - 1  # 0 (take g) or -1 (keep h), without a branch
        for i in range(10):
            st[i] = (st[30 + i] & ~keep) | (st[i] & keep)
        # (h + s) mod 2**128, in 16-bit words, little-endian
        s = self._s
        acc = 0
        nbits = 0
        j = 0
        c = 0
        for i in range(10):
            acc |= st[i] << nbits
            nbits += 13
            while nbits >= 16 and j < 16:
                v = (acc & 0xFFFF) + s[j] + (s[j + 1] << 8) + c
                out[off + j] = v & 0xFF
                out[off + j + 1] = (v >> 8) & 0xFF
                c = v >> 16
                acc >>= 16
                nbits -= 16
                j += 2
        for i in range(40):
            st[i] = 0


def poly1305(msg, key):
    """The 16-byte Poly1305 tag of msg under a 32-byte one-time key."""
    if len(key) != 32:
        raise CryptoError("Poly1305 key must be 32 bytes, not %d" % len(key))
    p = Poly1305(key)
    p.update(msg)
    return p.digest()


def verify(tag, msg, key):
    """True iff tag is msg's Poly1305 tag under key (constant-time comparison)."""
    if len(tag) != TAG_BYTES:
        raise CryptoError("Poly1305 tag must be 16 bytes, not %d" % len(tag))
    return ct.eq(poly1305(msg, key), tag)
