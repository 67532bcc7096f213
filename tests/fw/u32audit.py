# For the CPython-only "32-bit audit" tests: an int that fails as soon as
# an addition, subtraction, product or shift leaves 0..2**32-1. The
# pure-Python kernels do the very operations of their viper twins, so
# running them on U32 values proves that the viper code, whose uint is
# 32 bits on the boards, never overflows or goes negative (the unix port's
# 64-bit uint would hide it).

LIMIT = 1 << 32


def _chk(v):
    if not 0 <= v < LIMIT:
        raise AssertionError("32-bit overflow: %d" % v)
    return U32(v)


class U32(int):
    def __add__(self, o):
        return _chk(int(self) + int(o))

    __radd__ = __add__

    def __sub__(self, o):
        return _chk(int(self) - int(o))

    def __rsub__(self, o):
        return _chk(int(o) - int(self))

    def __mul__(self, o):
        return _chk(int(self) * int(o))

    __rmul__ = __mul__

    def __lshift__(self, o):
        return _chk(int(self) << int(o))

    def __rshift__(self, o):
        return U32(int(self) >> int(o))

    def __and__(self, o):
        return _chk(int(self) & int(o))

    __rand__ = __and__

    def __or__(self, o):
        return _chk(int(self) | int(o))

    __ror__ = __or__

    def __xor__(self, o):
        return _chk(int(self) ^ int(o))

    __rxor__ = __xor__

    def __neg__(self):
        return -int(self)  # the swap mask: viper's 0 - x, all ones


def wrap(values):
    return [U32(v) for v in values]
