# Constant-time comparisons: the time taken depends on the lengths (which
# are public) and never on where two secrets first differ.


def eq(a, b):
    """True iff a == b, looking at every byte."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def is_zero(a):
    """True iff every byte of a is zero, looking at every byte."""
    d = 0
    for x in a:
        d |= x
    return d == 0


def select(flag, a, b):
    """a if flag == 1 else b (flag 0 or 1), for equal-length byte strings, without a branch."""
    m = (-flag) & 0xFF
    out = bytearray(len(a))
    for i in range(len(a)):
        out[i] = (a[i] & m) | (b[i] & ~m & 0xFF)
    return bytes(out)
