# SHA-512 compression kernel in viper, the twin of sha512._compress_py
# (see there for the layout: 64-bit words as (high, low) 32-bit halves).
# Only imported on MicroPython; CPython fails at the import below.
#
# viper's uint is 32 bits on the boards and 64 on the unix port, so every
# shifted or summed value is masked to 32 bits, and a sum's carry out of
# bit 31 is computed from the operands' and the sum's top bits
# ((a & b) | ((a | b) & ~sum)), which is exact at both widths without an
# unsigned comparison. Viper constants must stay at or below 2**30: the
# mask is built at run time.

import micropython


@micropython.viper
def compress(st: ptr32, data: ptr8, nblocks: int, w: ptr32, k: ptr32):
    M = (uint(0xFFFF) << 16) | uint(0xFFFF)
    blk = 0
    while blk < nblocks:
        p = blk << 7
        i = 0
        while i < 32:  # the block's 16 words, big-endian, as 32 halves
            q = p + (i << 2)
            w[i] = (uint(data[q]) << 24) | (uint(data[q + 1]) << 16) | (uint(data[q + 2]) << 8) | uint(data[q + 3])
            i += 1
        while i < 160:  # i = 2t: W[t] = W[t-16] + s0(W[t-15]) + W[t-7] + s1(W[t-2])
            xh = uint(w[i - 30])
            xl = uint(w[i - 29])
            uh = (((xh >> 1) | (xl << 31)) ^ ((xh >> 8) | (xl << 24)) ^ (xh >> 7)) & M
            ul = (((xl >> 1) | (xh << 31)) ^ ((xl >> 8) | (xh << 24)) ^ ((xl >> 7) | (xh << 25))) & M
            xh = uint(w[i - 4])
            xl = uint(w[i - 3])
            vh = (((xh >> 19) | (xl << 13)) ^ ((xh << 3) | (xl >> 29)) ^ (xh >> 6)) & M
            vl = (((xl >> 19) | (xh << 13)) ^ ((xl << 3) | (xh >> 29)) ^ ((xl >> 6) | (xh << 26))) & M
            th = uint(w[i - 32])
            tl = uint(w[i - 31])
            s = (tl + ul) & M
            th = (th + uh + ((((tl & ul) | ((tl | ul) & (s ^ M))) >> 31) & 1)) & M
            tl = s
            xh = uint(w[i - 14])
            xl = uint(w[i - 13])
            s = (tl + xl) & M
            th = (th + xh + ((((tl & xl) | ((tl | xl) & (s ^ M))) >> 31) & 1)) & M
            tl = s
            s = (tl + vl) & M
            th = (th + vh + ((((tl & vl) | ((tl | vl) & (s ^ M))) >> 31) & 1)) & M
            tl = s
            w[i] = th
            w[i + 1] = tl
            i += 2
        ah = uint(st[0])
        al = uint(st[1])
        bh = uint(st[2])
        bl = uint(st[3])
        ch = uint(st[4])
        cl = uint(st[5])
        dh = uint(st[6])
        dl = uint(st[7])
        eh = uint(st[8])
        el = uint(st[9])
        fh = uint(st[10])
        fl = uint(st[11])
        gh = uint(st[12])
        gl = uint(st[13])
        hh = uint(st[14])
        hl = uint(st[15])
        i = 0
        while i < 160:
            # T1 = h + S1e + Ch(e, f, g) + K[t] + W[t], S1 = rotr 14 ^ rotr 18 ^ rotr 41
            th = hh
            tl = hl
            xh = (((eh >> 14) | (el << 18)) ^ ((eh >> 18) | (el << 14)) ^ ((el >> 9) | (eh << 23))) & M
            xl = (((el >> 14) | (eh << 18)) ^ ((el >> 18) | (eh << 14)) ^ ((eh >> 9) | (el << 23))) & M
            s = (tl + xl) & M
            th = (th + xh + ((((tl & xl) | ((tl | xl) & (s ^ M))) >> 31) & 1)) & M
            tl = s
            xh = (eh & fh) ^ ((eh ^ M) & gh)
            xl = (el & fl) ^ ((el ^ M) & gl)
            s = (tl + xl) & M
            th = (th + xh + ((((tl & xl) | ((tl | xl) & (s ^ M))) >> 31) & 1)) & M
            tl = s
            xh = uint(k[i])
            xl = uint(k[i + 1])
            s = (tl + xl) & M
            th = (th + xh + ((((tl & xl) | ((tl | xl) & (s ^ M))) >> 31) & 1)) & M
            tl = s
            xh = uint(w[i])
            xl = uint(w[i + 1])
            s = (tl + xl) & M
            th = (th + xh + ((((tl & xl) | ((tl | xl) & (s ^ M))) >> 31) & 1)) & M
            tl = s
            # T2 = S0a + Maj(a, b, c), S0 = rotr 28 ^ rotr 34 ^ rotr 39
            uh = (((ah >> 28) | (al << 4)) ^ ((al >> 2) | (ah << 30)) ^ ((al >> 7) | (ah << 25))) & M
            ul = (((al >> 28) | (ah << 4)) ^ ((ah >> 2) | (al << 30)) ^ ((ah >> 7) | (al << 25))) & M
            xh = (ah & bh) ^ (ah & ch) ^ (bh & ch)
            xl = (al & bl) ^ (al & cl) ^ (bl & cl)
            s = (ul + xl) & M
            uh = (uh + xh + ((((ul & xl) | ((ul | xl) & (s ^ M))) >> 31) & 1)) & M
            ul = s
            hh = gh
            hl = gl
            gh = fh
            gl = fl
            fh = eh
            fl = el
            eh = dh
            el = dl
            s = (el + tl) & M
            eh = (eh + th + ((((el & tl) | ((el | tl) & (s ^ M))) >> 31) & 1)) & M
            el = s
            dh = ch
            dl = cl
            ch = bh
            cl = bl
            bh = ah
            bl = al
            ah = th
            al = tl
            s = (al + ul) & M
            ah = (ah + uh + ((((al & ul) | ((al | ul) & (s ^ M))) >> 31) & 1)) & M
            al = s
            i += 2
        xh = uint(st[0])
        xl = uint(st[1])
        s = (xl + al) & M
        xh = (xh + ah + ((((xl & al) | ((xl | al) & (s ^ M))) >> 31) & 1)) & M
        xl = s
        st[0] = xh
        st[1] = xl
        xh = uint(st[2])
        xl = uint(st[3])
        s = (xl + bl) & M
        xh = (xh + bh + ((((xl & bl) | ((xl | bl) & (s ^ M))) >> 31) & 1)) & M
        xl = s
        st[2] = xh
        st[3] = xl
        xh = uint(st[4])
        xl = uint(st[5])
        s = (xl + cl) & M
        xh = (xh + ch + ((((xl & cl) | ((xl | cl) & (s ^ M))) >> 31) & 1)) & M
        xl = s
        st[4] = xh
        st[5] = xl
        xh = uint(st[6])
        xl = uint(st[7])
        s = (xl + dl) & M
        xh = (xh + dh + ((((xl & dl) | ((xl | dl) & (s ^ M))) >> 31) & 1)) & M
        xl = s
        st[6] = xh
        st[7] = xl
        xh = uint(st[8])
        xl = uint(st[9])
        s = (xl + el) & M
        xh = (xh + eh + ((((xl & el) | ((xl | el) & (s ^ M))) >> 31) & 1)) & M
        xl = s
        st[8] = xh
        st[9] = xl
        xh = uint(st[10])
        xl = uint(st[11])
        s = (xl + fl) & M
        xh = (xh + fh + ((((xl & fl) | ((xl | fl) & (s ^ M))) >> 31) & 1)) & M
        xl = s
        st[10] = xh
        st[11] = xl
        xh = uint(st[12])
        xl = uint(st[13])
        s = (xl + gl) & M
        xh = (xh + gh + ((((xl & gl) | ((xl | gl) & (s ^ M))) >> 31) & 1)) & M
        xl = s
        st[12] = xh
        st[13] = xl
        xh = uint(st[14])
        xl = uint(st[15])
        s = (xl + hl) & M
        xh = (xh + hh + ((((xl & hl) | ((xl | hl) & (s ^ M))) >> 31) & 1)) & M
        xl = s
        st[14] = xh
        st[15] = xl
        blk += 1
