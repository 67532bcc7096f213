# For CPython-only tests that run a viper kernel's own source with the
# boards' word size: viper's uint is 32 bits on ESP32 and RP2 (and 64 on
# the unix port, where the kernels are also run for real), so a kernel
# that relies on bits falling off the top must be checked with them falling
# off at bit 32. W32 wraps every operation mod 2**32, as the boards do.

MASK = 0xFFFFFFFF


class W32(int):
    def __new__(cls, v):
        return int.__new__(cls, int(v) & MASK)

    def _op(f):
        def g(self, o):
            return W32(f(int(self), int(o)))
        return g

    __add__ = __radd__ = _op(lambda a, b: a + b)
    __sub__ = _op(lambda a, b: a - b)
    __rsub__ = _op(lambda a, b: b - a)
    __mul__ = __rmul__ = _op(lambda a, b: a * b)
    __lshift__ = _op(lambda a, b: a << b)
    __rshift__ = _op(lambda a, b: a >> b)
    __and__ = __rand__ = _op(lambda a, b: a & b)
    __or__ = __ror__ = _op(lambda a, b: a | b)
    __xor__ = __rxor__ = _op(lambda a, b: a ^ b)


class _Viper:
    @staticmethod
    def viper(f):
        return f


def load_kernel(path, name):
    """The function `name` of the viper module at path, as plain Python on W32 words."""
    with open(path) as f:
        src = f.read().replace("import micropython\n", "")
    env = {"micropython": _Viper, "uint": W32, "ptr32": None, "ptr8": None, "int": int}
    exec(compile(src, path, "exec"), env)
    return env[name]
