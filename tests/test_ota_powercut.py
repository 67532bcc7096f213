"""Updates over the air, applied on the MicroPython unix port against littlefs
(tests/fw/ota_powercut.py): a power cut after every flash operation of the whole
update (staging the offer and each chunk, emptying and filling the idle slot, the
switch, boot.py's trial mark, the confirmation, the clean-up), clean or with that
operation torn halfway, boots the old tree
or the new one, whole, and the hub then finishes the update; only a cut while the
trial runs unconfirmed rolls it back. Also boot.py's own decisions."""

import re
import shutil

from test_ota_release import tree

from samband.device import release as rel
from samband.paths import REPO

SEED = bytes(range(32))


def trees():
    """The old and the new tree of tests/data/ota's releases."""
    return tree("1.0.0"), tree("1.1.0", b"# a fix\n" * 40)


def write(tmp, files):
    for p, data in files.items():
        (tmp / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp / p).write_bytes(data)


def make(tmp):
    import nacl.bindings as nb
    old, new = trees()
    write(tmp / "old", old)
    write(tmp / "new", new)
    image = rel.tree_image(tmp / "new")
    data = rel.assemble(rel.manifest("vhub", "tree", "1.1.0", "1.0.0", image, 1764547200), image, SEED)
    (tmp / "release.sbr").write_bytes(data)
    (tmp / "release.pub").write_bytes(nb.crypto_sign_seed_keypair(SEED)[0])
    shutil.copy(REPO / "firmware" / "boot.py", tmp / "boot.py")


def test_power_cut_after_every_flash_operation_of_an_update(mpy, tmp_path):
    make(tmp_path)
    p = mpy(["ota_powercut.py", str(tmp_path)], heap="4m")
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()[-3000:] + out[-3000:]
    steps = set(re.findall(r"^STEP (\S+)", out, re.M))
    assert {"chunk", "remove", "mkdir", "file", "pointer", "boot", "confirm"} <= steps, steps
    fails = re.findall(r"^FAIL .*", out, re.M)
    assert not fails, "\n".join(fails[:20])
    done = re.search(r"^DONE (\d+) (\d+) (\d+) (\d+)", out, re.M)
    checked, failures, new, rolled = map(int, done.groups())
    ops = int(re.search(r"^OPS (\d+)", out, re.M).group(1))
    assert checked == 2 * ops + 1 and failures == 0  # every cut point, clean and torn
    assert new + rolled == checked and new > rolled > 0, out[-500:]
