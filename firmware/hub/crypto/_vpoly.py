# Poly1305 block kernel in viper, the twin of poly1305._blocks_py (see
# there for the limbs and the bounds that keep every sum below 2**32).
# Only imported on MicroPython; CPython fails at the import below.

import micropython


@micropython.viper
def blocks(st: ptr32, m: ptr8, n: int, hibit: int):
    hb = uint(hibit)
    h0 = uint(st[0])
    h1 = uint(st[1])
    h2 = uint(st[2])
    h3 = uint(st[3])
    h4 = uint(st[4])
    h5 = uint(st[5])
    h6 = uint(st[6])
    h7 = uint(st[7])
    h8 = uint(st[8])
    h9 = uint(st[9])
    r0 = uint(st[10])
    r1 = uint(st[11])
    r2 = uint(st[12])
    r3 = uint(st[13])
    r4 = uint(st[14])
    r5 = uint(st[15])
    r6 = uint(st[16])
    r7 = uint(st[17])
    r8 = uint(st[18])
    r9 = uint(st[19])
    s1 = uint(st[21])
    s2 = uint(st[22])
    s3 = uint(st[23])
    s4 = uint(st[24])
    s5 = uint(st[25])
    s6 = uint(st[26])
    s7 = uint(st[27])
    s8 = uint(st[28])
    s9 = uint(st[29])
    p = 0
    while p < n:
        h0 += (uint(m[p + 0]) | uint(m[p + 1]) << 8) & 0x1FFF
        h1 += ((uint(m[p + 1]) | uint(m[p + 2]) << 8 | uint(m[p + 3]) << 16) >> 5) & 0x1FFF
        h2 += ((uint(m[p + 3]) | uint(m[p + 4]) << 8) >> 2) & 0x1FFF
        h3 += ((uint(m[p + 4]) | uint(m[p + 5]) << 8 | uint(m[p + 6]) << 16) >> 7) & 0x1FFF
        h4 += ((uint(m[p + 6]) | uint(m[p + 7]) << 8 | uint(m[p + 8]) << 16) >> 4) & 0x1FFF
        h5 += ((uint(m[p + 8]) | uint(m[p + 9]) << 8) >> 1) & 0x1FFF
        h6 += ((uint(m[p + 9]) | uint(m[p + 10]) << 8 | uint(m[p + 11]) << 16) >> 6) & 0x1FFF
        h7 += ((uint(m[p + 11]) | uint(m[p + 12]) << 8) >> 3) & 0x1FFF
        h8 += (uint(m[p + 13]) | uint(m[p + 14]) << 8) & 0x1FFF
        h9 += ((uint(m[p + 14]) | uint(m[p + 15]) << 8 | hb << 16) >> 5) & 0x1FFF
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
