# Field-arithmetic kernel for X25519 in viper, the twin of x25519._run_py
# (see there for the representation, the instruction set and the bounds).
# Only imported on MicroPython; CPython fails at the import below.
#
# viper's uint is 32 bits on the boards and 64 on the unix port: the
# limbs are 16 bits and every intermediate stays below 2**32, so both
# widths compute the same words without masks.

import micropython


@micropython.viper
def run(buf: ptr32, prog: ptr8, start: int, end: int):
    T = 272  # scratch: 32 words of product columns (slots 17 and 18)
    pc = start
    while pc < end:
        op = int(prog[pc])
        d = int(prog[pc + 1]) << 4
        a = int(prog[pc + 2]) << 4
        b = int(prog[pc + 3]) << 4
        pc += 4
        if op == 3:  # CSWAP a, b when the word buf[0] is 1
            mask = uint(0) - uint(buf[0])
            i = 0
            while i < 16:
                x = uint(buf[a + i])
                y = uint(buf[b + i])
                t = (x ^ y) & mask
                buf[a + i] = x ^ t
                buf[b + i] = y ^ t
                i += 1
            continue
        if op == 4:  # COPY d = a
            i = 0
            while i < 16:
                buf[d + i] = buf[a + i]
                i += 1
            continue
        reps = 1
        if op == 5:  # SQN: d = d ** (2 ** n), n in the fourth byte
            reps = int(prog[pc - 1])
            a = d
            b = d
            op = 2
        while reps > 0:
            reps -= 1
            c = uint(0)
            if op == 2:  # MUL d = a * b
                i = 0
                while i < 32:
                    buf[T + i] = 0
                    i += 1
                i = 0
                while i < 16:
                    ai = uint(buf[a + i])
                    k = T + i
                    j = 0
                    while j < 16:
                        p = ai * uint(buf[b + j])
                        buf[k] = uint(buf[k]) + (p & 0xFFFF)
                        buf[k + 1] = uint(buf[k + 1]) + (p >> 16)
                        k += 1
                        j += 1
                    i += 1
                i = 0
                while i < 16:  # 2**256 = 38 (mod p)
                    v = uint(buf[T + i]) + uint(buf[T + 16 + i]) * 38 + c
                    buf[d + i] = v & 0xFFFF
                    c = v >> 16
                    i += 1
            elif op == 0:  # ADD d = a + b
                i = 0
                while i < 16:
                    v = uint(buf[a + i]) + uint(buf[b + i]) + c
                    buf[d + i] = v & 0xFFFF
                    c = v >> 16
                    i += 1
            else:  # SUB d = a + 4p - b
                v = uint(buf[a]) + 0x1FFB4 - uint(buf[b])
                buf[d] = v & 0xFFFF
                c = v >> 16
                i = 1
                while i < 16:
                    v = uint(buf[a + i]) + 0x1FFFE - uint(buf[b + i]) + c
                    buf[d + i] = v & 0xFFFF
                    c = v >> 16
                    i += 1
            n = 0
            while n < 2:  # fold the carry out of 2**256 back in, twice
                v = uint(buf[d]) + c * 38
                buf[d] = v & 0xFFFF
                c = v >> 16
                i = 1
                while i < 16:
                    v = uint(buf[d + i]) + c
                    buf[d + i] = v & 0xFFFF
                    c = v >> 16
                    i += 1
                n += 1
