# Runs first at every reset, before main.py. Kept tiny: the hub's code
# lives in the compiled hub package so that a bad edit here cannot brick
# the board.
#
# Which tree runs: `samband deploy` and an update over the air write a
# whole firmware tree into a slot folder (/fw/a or /fw/b), check it, then
# rename a new /fw/active (naming the slot) over the old one. That rename
# is the one step that switches, so a power cut at any moment leaves the
# old tree or the new, never a mix. No pointer (a board set up by copying
# files), or a slot without its board.json: the tree at the flash root.
#
# An update switches to a trial (hub/ota.py): "b?a" is a trial of b not
# booted yet, so this boot marks it "b!a" (booted once) and runs b; a
# pointer still "b!a" at the next boot means the trial reset or lost
# power before the hub confirmed it (booted, broker reached, status sent):
# back to a ("-": the root tree), written "a~b" (a, after b was rolled
# back) until the hub has taken note. Each change is one atomic rename.
import gc
import os
import sys


def _point(t):
    with open("/fw/active.new", "w") as f:
        f.write(t)
    os.rename("/fw/active.new", "/fw/active")


try:
    with open("/fw/active") as _f:
        _s = _f.read().strip()
    if len(_s) == 3 and _s[1] in "?!~":
        if _s[1] == "~":  # rolled back before; the hub has not taken note yet
            _s = _s[0]
        elif _s[1] == "!":
            print("boot: trial of /fw/%s not confirmed: rolled back" % _s[0])
            _point(_s[2] + "~" + _s[0])
            _s = _s[2]
        else:
            try:
                open("/fw/%s/board.json" % _s[0]).close()
                _point(_s[0] + "!" + _s[2])
                _s = _s[0]
            except OSError:  # not a whole tree: back at once
                _point(_s[2] + "~" + _s[0])
                _s = _s[2]
    if _s in ("a", "b"):
        open("/fw/%s/board.json" % _s).close()
        sys.path.insert(0, "/fw/" + _s)
    del _f, _s
except OSError:
    pass
del _point
gc.collect()
