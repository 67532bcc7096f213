# Runs first at every reset, before main.py. Kept tiny: the hub's code
# lives in the compiled hub package so that a bad edit here cannot brick
# the board.
#
# Which tree runs: `samband deploy` writes a whole firmware tree into a
# slot folder (/fw/a or /fw/b), checks it, then renames a new /fw/active
# (naming the slot) over the old one. That rename is the one step that
# switches, so a power cut at any moment leaves the old tree or the new,
# never a mix. No pointer (a board set up by copying files), or a slot
# without its board.json: the tree at the flash root runs, as before.
import gc
import sys

try:
    with open("/fw/active") as _f:
        _s = _f.read().strip()
    if _s in ("a", "b"):
        open("/fw/%s/board.json" % _s).close()
        sys.path.insert(0, "/fw/" + _s)
    del _f, _s
except OSError:
    pass
gc.collect()
