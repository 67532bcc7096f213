# The Samband hub firmware. Everything here runs on MicroPython boards
# and on the unix port (the virtual hub); pure modules also import under
# CPython so that the host can cross-check them.

VERSION = "0.1.0"


def forget(name):
    """Drop a module that a running hub needs only now and then (X25519 once an
    epoch, the vault once a boot): its functions, dict and, imported from a
    flash folder, its bytecode go back to the heap. Its interned names stay:
    only a module never imported costs none. The next import loads it again."""
    import sys
    if sys.modules.pop(name, None) is not None:
        parent, _, child = name.rpartition(".")
        p = sys.modules.get(parent)
        if p is not None and hasattr(p, child):
            delattr(p, child)


def read_bytes(path):
    """A whole file, or None where it is missing: the seal's keys and epoch, the
    alarm limits. Here, in the package every hub module has loaded, so that
    sharing it costs no module of its own on a heap."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None
