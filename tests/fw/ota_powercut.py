# Exhaustive power-cut test of an update over the air, on littlefs
# (MicroPython unix port only: vfs.VfsLfs2). Run by tests/test_ota_powercut.py:
#
#   micropython ota_powercut.py DIR      (DIR: old/ and new/ trees, release.sbr, release.pub)
#
# 1. The whole update runs once on a RAM block device under littlefs that
#    logs every block program and erase: the offer staged, every chunk
#    stored, apply (the idle slot emptied and filled, the pointer set to
#    the trial), the reboot (boot.py marks the trial booted), the
#    confirmation, the stage removed. Each hub.ota step is noted against
#    the operation count, so every step is cut at.
# 2. For every cut point k the image after the first k operations is
#    mounted afresh ("power back"), and once more with operation k+1 torn
#    (half of its program or erase done), and:
#    - boot.py picks a tree, and that tree is the old one or the new one,
#      whole, file for file: never neither, never a mix;
#    - the hub then carries on as it would (hub.ota.Ota.start, fetch what is
#      missing, apply, reboot, confirm) and ends on the new tree confirmed;
#      or, only if the cut fell while the trial ran unconfirmed, back on the
#      old tree with the release marked failed (a trial that loses power is
#      rolled back, by design).
# Prints "OPS n", "STEP name first-op", "FAIL k: why" and "DONE checked failures new rolled".

import sys

import vfs

from logbd import LogBD

from hub import ota, release  # noqa: F401 - loaded before the cuts
from hub.state import mkdirs

BS = 512
BLOCKS = 256
MNT = "/pc"
FW = MNT + "/fw"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def walk(root, rel=""):
    out = {}
    import os
    for name in os.listdir(root + rel):
        p = rel + "/" + name
        if os.stat(root + p)[0] & 0x4000:
            out.update(walk(root, p))
        else:
            out[p[1:]] = read(root + p)
    return out


def write_tree(root, files):
    for p, data in files.items():
        full = root + "/" + p
        mkdirs(full.rsplit("/", 1)[0])
        with open(full, "wb") as f:
            f.write(data)


BOOT_SRC = None


def boot():
    """Run boot.py against the flash at MNT; returns the slot it put on sys.path ("-": the root)."""
    keep = list(sys.path)
    ns = {"__name__": "boot"}
    exec(BOOT_SRC, ns)
    picked = "-"
    if len(sys.path) > len(keep) and sys.path[0].startswith(FW + "/"):
        picked = sys.path[0][len(FW) + 1:]
    sys.path[:] = keep
    return picked


def mount(img):
    try:
        vfs.umount(MNT)
    except OSError:
        pass
    vfs.mount(vfs.VfsLfs2(LogBD(img, bs=BS)), MNT)


def chunks(rel, cs):
    _, _, start = release.split_header(rel)
    img = rel[start:]
    return rel[:start], [img[i:i + cs] for i in range(0, len(img), cs)]


def main():
    global BOOT_SRC
    d = sys.argv[1]
    src = read(d + "/boot.py").decode()
    BOOT_SRC = src.replace('"/fw/', '"' + FW + '/')
    assert BOOT_SRC.count(FW) >= 5, "boot.py's paths moved: the harness maps them"
    import os
    old = walk(d + "/old")
    new = walk(d + "/new")
    rel = read(d + "/release.sbr")
    key = read(d + "/release.pub")
    cs = 512
    head, parts = chunks(rel, cs)
    old_v, new_v = "1.0.0", "1.1.0"

    # the flash before the update: slot a holds the old tree and is confirmed
    base = bytearray(BLOCKS * BS)
    vfs.VfsLfs2.mkfs(LogBD(base, bs=BS))
    mount(base)
    os.mkdir(FW)
    write_tree(FW + "/a", old)
    ota.write_pointer("a", FW)
    vfs.umount(MNT)

    # 1. the update, logged
    log = []
    img = bytearray(base)
    vfs.mount(vfs.VfsLfs2(LogBD(img, log, BS)), MNT)
    steps = []

    def step(name):
        if not steps or steps[-1][0] != name:
            steps.append((name, len(log)))

    o = ota.Ota("vhub", old_v, key, {"window": 64}, fw=FW, step=step)
    o.start()
    o.on_message(ota.cbor.dumps({"o": head, "cs": cs}))
    for i, c in enumerate(parts):
        o.on_message(ota.cbor.dumps({"c": i, "d": c}))
    assert o.due(0, 0), o.state
    assert o.run_apply(), o.refused
    step("boot")
    assert boot() == "b"
    o = ota.Ota("vhub", new_v, key, fw=FW, step=step)
    assert o.start() == "trial"
    step("confirm")
    assert o.reported()
    assert ota.read_pointer(FW) == "b"
    vfs.umount(MNT)
    print("OPS", len(log))
    for name, n in steps:
        print("STEP", name, n)

    # 2. every cut point
    fails = 0
    n_new = n_rolled = checked = 0
    img = bytearray(base)
    k = 0
    for k in range(len(log) + 1):
        if k:
            blk, off, data = log[k - 1]
            a = blk * BS
            if data is None:
                img[a:a + BS] = b"\xff" * BS
            else:
                img[a + off:a + off + len(data)] = data
        images = [("", bytearray(img))]
        if k < len(log):
            # and operation k+1 torn: the first half of its program, or of its erase
            torn = bytearray(img)
            blk, off, data = log[k]
            a = blk * BS
            if data is None:
                torn[a:a + BS // 2] = b"\xff" * (BS // 2)
            else:
                h = len(data) // 2
                torn[a + off:a + off + h] = data[:h]
            images.append((" torn", torn))
        for what, im in images:
            why = check(im, old, new, old_v, new_v, key, head, parts, cs)
            checked += 1
            if why == "new":
                n_new += 1
            elif why == "rolled":
                n_rolled += 1
            else:
                fails += 1
                print("FAIL %d%s: %s" % (k, what, why))
    print("DONE", checked, fails, n_new, n_rolled)


def check(img, old, new, old_v, new_v, key, head, parts, cs):
    """None/"new"/"rolled" if the cut at this point ends well, else why not."""
    try:
        mount(img)
    except OSError as e:
        return "littlefs does not mount: %s" % e
    try:
        in_trial = "!" in ota.read_pointer(FW)  # the trial ran and was not confirmed
        slot = boot()
        if slot not in ("a", "b"):
            return "boot.py picked the root tree (none there)"
        tree = walk(FW + "/" + slot)
        if tree == old:
            running = old_v
        elif tree == new:
            running = new_v
        else:
            return "boot.py picked slot %s holding neither tree (%d files)" % (slot, len(tree))
        # the hub carries on
        for _ in range(3):
            o = ota.Ota("vhub", running, key, {"window": 64}, fw=FW)
            st = o.start()
            if running == new_v:
                if st == "trial":
                    o.reported()
                break
            if st == "failed":
                if not in_trial:
                    return "rolled back after a cut outside the trial"
                return "rolled"
            if st in ("none", "fetch"):
                o.on_message(ota.cbor.dumps({"o": head, "cs": cs}))
                for i, c in enumerate(parts):
                    o.on_message(ota.cbor.dumps({"c": i, "d": c}))
            if o.state != "apply":
                return "after the restart the update stands at %r (refused %r)" % (o.state, o.refused)
            if not o.run_apply():
                return "apply refused after the restart: %r" % o.refused
            slot = boot()
            if walk(FW + "/" + slot) != new:
                return "the resumed apply booted slot %s that is not the new tree" % slot
            running = new_v
        p = ota.read_pointer(FW)
        if p not in ("a", "b") or walk(FW + "/" + p) != new:
            return "ends with pointer %r, not the new tree confirmed" % p
        try:
            import os
            os.stat(FW + "/ota")
            return "the stage is left behind"
        except OSError:
            pass
        return "new"
    finally:
        vfs.umount(MNT)


main()
