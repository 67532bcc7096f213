# The hub's side of an update over the air (hub/ota.py, hub/otatree.py) on both
# runtimes, against a folder standing in for the flash, with the tree releases
# of tests/data/ota/ (built and signed by the host: tests/test_ota_release.py):
# fetched chunk by chunk, resumed after a restart, applied into the idle slot as
# a trial, confirmed; each bad release refused with its code and nothing
# switched; the fetch policy (window, re-asking, the cellular budget).

import os

from fwtest import raises
from hub import cbor, ota, otatree
from ota_util import chunk as _chunk
from ota_util import install_old
from ota_util import offer as _offer
from ota_util import read as _read

CS = 256
# The update service's own heap is measured in tests/bench (bench_ota_update: 40.8 KB peak for a
# whole update); here it shares the unix port's heap with this file's releases, read whole, and
# with the firmware path's code since whole-firmware updates came in (2 KB more): at 100k a 3 KB
# read was once not to be had in a CI run.
MPY_HEAP = "128k"


def _key():
    return _read("release/release.pub")


def _fresh():
    """A new folder standing in for the hub's /fw, with the old tree in slot a, confirmed."""
    root = "/tmp/samband-ota-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(root)
    return install_old(root)


def _version(root, slot):
    with open(root + "/" + slot + "/hub/__init__.py") as f:
        return f.read().split('"')[1]


class _Tel:
    def __init__(self):
        self.got = []

    def __call__(self, mdc, val):
        self.got.append(mdc)


def _diff(a, b):
    return (a - b) & 0x3FFFFFFF


def test_fetch_resume_apply_confirm():
    root = _fresh()
    tel = _Tel()
    o = ota.Ota("vhub", "1.0.0", _key(), {"window": 2}, tel, fw=root)
    assert o.start() == "none" and o.status()["s"] == "a"
    parts = _offer(o)
    assert o.state == "fetch" and tel.got == [ota.MDC_HUB_OTA_OFFER]
    assert o.wants(0, _diff) and o.status(True)["w"] == [0, 1]
    assert "w" not in o.status(True)  # asked once; again only after retry_ms
    assert not o.wants(0, _diff)  # two asked, none arrived: nothing new to ask
    _chunk(o, 0, parts[0])
    _chunk(o, 1, parts[1])
    _chunk(o, 1, parts[1])  # twice: stored once
    assert o.counters["chunks"] == 2 and o.counters["dup_chunks"] == 1
    # a restart (power cut): the hub knows which chunks it has and asks only for the rest
    o = ota.Ota("vhub", "1.0.0", _key(), {"window": 8}, tel, fw=root)
    assert o.start() == "fetch" and o.stage.count == 2
    assert o.wants(0, _diff) and o.status(True)["w"] == list(range(2, len(parts)))
    for i in range(2, len(parts)):
        _chunk(o, i, parts[i])
    assert o.state == "apply" and tel.got[-1] == ota.MDC_HUB_OTA_FETCHED
    assert not o.due(1, 0) and not o.due(0, 51) and o.due(0, 50)  # no unsent alarm, a small backlog
    assert o.run_apply() and ota.read_pointer(root) == "b?a"
    assert _version(root, "b") == "1.1.0" and _version(root, "a") == "1.0.0"
    # boot.py marks the trial booted; the new version starts and confirms once it has reported
    ota.write_pointer("b!a", root)
    o = ota.Ota("vhub", "1.1.0", _key(), None, tel, fw=root)
    assert o.start() == "trial" and not o.trial_expired(299999) and o.trial_expired(300000)
    assert o.status()["s"] == "b" and o.status()["v"] == "1.1.0"  # the receiver records which tree runs
    assert o.reported() and ota.read_pointer(root) == "b" and o.state == "done"
    assert tel.got[-3:] == [ota.MDC_HUB_OTA_SWITCHED, ota.MDC_HUB_OTA_TRIAL, ota.MDC_HUB_OTA_CONFIRMED]
    assert raises(OSError, os.stat, root + "/ota")
    ota.remove_tree(root)


def _refused(name, running="1.0.0"):
    root = _fresh()
    o = ota.Ota("vhub", running, _key(), None, fw=root)
    o.start()
    _offer(o, name)
    code = o.refused
    assert o.state == "refused" and ota.read_pointer(root) == "a"
    assert raises(OSError, os.stat, root + "/ota")  # nothing staged
    ota.remove_tree(root)
    return code


def test_refused_offers_stage_nothing():
    assert _refused("ota/other-key.sbr") == "signature"
    assert _refused("ota/picow.sbr") == "board"
    assert _refused("ota/old.sbr") == "downgrade"
    assert _refused("ota/good.sbr", running="0.9.0") == "too-old"
    root = _fresh()
    o = ota.Ota("vhub", "1.1.0", _key(), None, fw=root)
    o.start()
    _offer(o)  # the release it runs (still retained after the update): nothing to do
    assert o.state == "done" and o.refused is None and o.counters["bad"] == 0
    ota.remove_tree(root)
    assert _refused("release/good.sbr", running="0.1.0") == "kind"  # an app (ROMFS) release, not a tree


def test_truncated_chunk_and_altered_image():
    root = _fresh()
    o = ota.Ota("vhub", "1.0.0", _key(), None, fw=root)
    o.start()
    parts = _offer(o)
    _chunk(o, 0, parts[0][:-1])  # a truncated chunk
    assert o.refused == "chunk" and o.stage.count == 0
    _chunk(o, len(parts), parts[0])  # beyond the image
    assert o.stage.count == 0 and o.counters["bad"] == 2 and o.state == "fetch"  # the fetch goes on
    # an image altered in transit (or on flash): every chunk fits, the signed hash does not
    o = ota.Ota("vhub", "1.0.0", _key(), None, fw=root)
    o.start()
    parts = _offer(o, "ota/altered.sbr")
    for i, c in enumerate(parts):
        _chunk(o, i, c)
    assert o.state == "apply" and not o.run_apply()
    assert o.refused == "hash" and ota.read_pointer(root) == "a" and _version(root, "a") == "1.0.0"
    assert raises(OSError, os.stat, root + "/ota")
    ota.remove_tree(root)


def test_rolled_back_release_is_never_tried_again():
    root = _fresh()
    tel = _Tel()
    o = ota.Ota("vhub", "1.0.0", _key(), None, tel, fw=root)
    o.start()
    parts = _offer(o)
    for i, c in enumerate(parts):
        _chunk(o, i, c)
    assert o.run_apply()
    ota.write_pointer("a~b", root)  # boot.py: the trial did not confirm
    o = ota.Ota("vhub", "1.0.0", _key(), None, tel, fw=root)
    assert o.start() == "failed" and ota.read_pointer(root) == "a" and o.status()["s"] == "a"
    assert tel.got[-1] == ota.MDC_HUB_OTA_ROLLED_BACK
    _offer(o)  # offered again (retained): ignored
    assert o.state == "failed" and not o.wants(0, _diff) and o.status()["st"] == "failed"
    o = ota.Ota("vhub", "1.0.0", _key(), None, tel, fw=root)
    assert o.start() == "failed"
    ota.remove_tree(root)


def test_fetch_policy_window_retry_budget_and_stop():
    root = _fresh()
    o = ota.Ota("vhub", "1.0.0", _key(), {"window": 1, "retry_ms": 1000, "budget_bytes": 600}, fw=root)
    o.start()
    parts = _offer(o)
    assert o.wants(0, _diff) and o.status(True)["w"] == [0]
    assert not o.wants(999, _diff)
    assert o.wants(1000, _diff) and o.status(True)["w"] == [0]  # lost: asked again
    o.cellular = True
    _chunk(o, 0, parts[0])
    _chunk(o, 1, parts[1])
    assert o.spent == 2 * CS
    o.wants(1000, _diff)
    s = o.status(True)
    assert s["st"] == "budget" and "w" not in s  # a third chunk would pass 600 bytes on cellular
    assert len(cbor.dumps({"pending": 2 ** 40, "alarms": 2 ** 40, "tq": 2 ** 31, "ota": s})) < 256
    o.cellular = False
    assert o.wants(1000, _diff) and o.status(True)["w"] == [2]  # Wi-Fi: no budget
    o = ota.Ota("vhub", "1.0.0", _key(), {"budget_bytes": 600}, fw=root)
    assert o.start() == "fetch" and o.spent == 2 * CS  # the budget survives a restart
    o.on_message(cbor.dumps({"x": 1}))  # stopped by `samband ota stop`
    assert o.state == "none" and raises(OSError, os.stat, root + "/ota")
    o.on_message(b"\xff\x00")
    o.on_message(cbor.dumps([1, 2]))
    assert o.counters["bad"] == 2 and o.state == "none" and o.refused == "format"
    ota.remove_tree(root)


def test_tree_paths_stay_inside_the_slot():
    for bad in (b"../x", b"/x", b"a//b", b"a/./b", b"a b", b""):
        e = raises(otatree.TreeError, otatree.check_path, bad)
        assert "path" in str(e)
    root = _fresh()
    u = otatree.Unpacker(root + "/a")
    e = raises(otatree.TreeError, u.feed, otatree.MAGIC + bytes((4,)) + b"../x" + bytes(4))
    assert ".." in str(e)
    u = otatree.Unpacker(root + "/a")
    u.feed(b"SbT\x01\x01a\x00\x00\x00\x05ab")  # cut inside the file
    assert "truncated" in str(raises(otatree.TreeError, u.finish))
    assert "magic" in str(raises(otatree.TreeError, otatree.Unpacker(root).feed, b"SbR\x01"))
    ota.remove_tree(root)


def test_pointer_states():
    assert ota.parse_pointer("a") == ("a", None, "")
    assert ota.parse_pointer("b?a") == ("a", "b", "?")
    assert ota.parse_pointer("a!-") == ("-", "a", "!")
    assert ota.parse_pointer("a~b") == ("a", "b", "~")
    assert ota.parse_pointer("-~a") == ("-", "a", "~")
    for junk in ("", "c", "a?a", "b?c", "-?a", "ab"):
        assert ota.parse_pointer(junk) == ("-", None, "")
