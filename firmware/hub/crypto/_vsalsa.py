# Salsa20 block kernel in viper, the twin of salsa20._xor_py (see there for
# the state layout). Only imported on MicroPython; CPython fails at the
# import of micropython below and uses the twin.
#
# viper's uint is the machine word: 32 bits on ESP32/RP2, 64 bits on the
# unix port (x64). Every sum is therefore masked to 32 bits before it is
# rotated, so both widths compute the same words. Viper constants must
# stay at or below 2**30: the mask is built at run time.
# Words are read through ptr32, which needs little-endian order; the
# importer checks sys.byteorder. The state is a bytearray of our own
# (heap-allocated, so word-aligned); the data goes through ptr8.

import micropython


@micropython.viper
def xor(st: ptr32, src: ptr8, dst: ptr8, n: int):
    M = (uint(0xFFFF) << 16) | uint(0xFFFF)
    ks = ptr8(uint(st) + 64)
    feed = uint(st[32])
    pos = 0
    while pos < n:
        x0 = uint(st[0])
        x1 = uint(st[1])
        x2 = uint(st[2])
        x3 = uint(st[3])
        x4 = uint(st[4])
        x5 = uint(st[5])
        x6 = uint(st[6])
        x7 = uint(st[7])
        x8 = uint(st[8])
        x9 = uint(st[9])
        x10 = uint(st[10])
        x11 = uint(st[11])
        x12 = uint(st[12])
        x13 = uint(st[13])
        x14 = uint(st[14])
        x15 = uint(st[15])
        i = 0
        while i < 10:
            t = (x0 + x12) & M
            x4 ^= ((t << 7) | (t >> 25)) & M
            t = (x4 + x0) & M
            x8 ^= ((t << 9) | (t >> 23)) & M
            t = (x8 + x4) & M
            x12 ^= ((t << 13) | (t >> 19)) & M
            t = (x12 + x8) & M
            x0 ^= ((t << 18) | (t >> 14)) & M
            t = (x5 + x1) & M
            x9 ^= ((t << 7) | (t >> 25)) & M
            t = (x9 + x5) & M
            x13 ^= ((t << 9) | (t >> 23)) & M
            t = (x13 + x9) & M
            x1 ^= ((t << 13) | (t >> 19)) & M
            t = (x1 + x13) & M
            x5 ^= ((t << 18) | (t >> 14)) & M
            t = (x10 + x6) & M
            x14 ^= ((t << 7) | (t >> 25)) & M
            t = (x14 + x10) & M
            x2 ^= ((t << 9) | (t >> 23)) & M
            t = (x2 + x14) & M
            x6 ^= ((t << 13) | (t >> 19)) & M
            t = (x6 + x2) & M
            x10 ^= ((t << 18) | (t >> 14)) & M
            t = (x15 + x11) & M
            x3 ^= ((t << 7) | (t >> 25)) & M
            t = (x3 + x15) & M
            x7 ^= ((t << 9) | (t >> 23)) & M
            t = (x7 + x3) & M
            x11 ^= ((t << 13) | (t >> 19)) & M
            t = (x11 + x7) & M
            x15 ^= ((t << 18) | (t >> 14)) & M
            t = (x0 + x3) & M
            x1 ^= ((t << 7) | (t >> 25)) & M
            t = (x1 + x0) & M
            x2 ^= ((t << 9) | (t >> 23)) & M
            t = (x2 + x1) & M
            x3 ^= ((t << 13) | (t >> 19)) & M
            t = (x3 + x2) & M
            x0 ^= ((t << 18) | (t >> 14)) & M
            t = (x5 + x4) & M
            x6 ^= ((t << 7) | (t >> 25)) & M
            t = (x6 + x5) & M
            x7 ^= ((t << 9) | (t >> 23)) & M
            t = (x7 + x6) & M
            x4 ^= ((t << 13) | (t >> 19)) & M
            t = (x4 + x7) & M
            x5 ^= ((t << 18) | (t >> 14)) & M
            t = (x10 + x9) & M
            x11 ^= ((t << 7) | (t >> 25)) & M
            t = (x11 + x10) & M
            x8 ^= ((t << 9) | (t >> 23)) & M
            t = (x8 + x11) & M
            x9 ^= ((t << 13) | (t >> 19)) & M
            t = (x9 + x8) & M
            x10 ^= ((t << 18) | (t >> 14)) & M
            t = (x15 + x14) & M
            x12 ^= ((t << 7) | (t >> 25)) & M
            t = (x12 + x15) & M
            x13 ^= ((t << 9) | (t >> 23)) & M
            t = (x13 + x12) & M
            x14 ^= ((t << 13) | (t >> 19)) & M
            t = (x14 + x13) & M
            x15 ^= ((t << 18) | (t >> 14)) & M
            i += 1
        if feed:
            x0 = (x0 + uint(st[0])) & M
            x1 = (x1 + uint(st[1])) & M
            x2 = (x2 + uint(st[2])) & M
            x3 = (x3 + uint(st[3])) & M
            x4 = (x4 + uint(st[4])) & M
            x5 = (x5 + uint(st[5])) & M
            x6 = (x6 + uint(st[6])) & M
            x7 = (x7 + uint(st[7])) & M
            x8 = (x8 + uint(st[8])) & M
            x9 = (x9 + uint(st[9])) & M
            x10 = (x10 + uint(st[10])) & M
            x11 = (x11 + uint(st[11])) & M
            x12 = (x12 + uint(st[12])) & M
            x13 = (x13 + uint(st[13])) & M
            x14 = (x14 + uint(st[14])) & M
            x15 = (x15 + uint(st[15])) & M
        st[16] = x0
        st[17] = x1
        st[18] = x2
        st[19] = x3
        st[20] = x4
        st[21] = x5
        st[22] = x6
        st[23] = x7
        st[24] = x8
        st[25] = x9
        st[26] = x10
        st[27] = x11
        st[28] = x12
        st[29] = x13
        st[30] = x14
        st[31] = x15
        m = n - pos
        if m > 64:
            m = 64
        j = 0
        while j < m:
            dst[pos + j] = src[pos + j] ^ ks[j]
            j += 1
        pos += 64
        c = (uint(st[8]) + 1) & M
        st[8] = c
        if c == uint(0):
            st[9] = (uint(st[9]) + 1) & M
