# The hub's release checks (hub/release.py) on both runtimes, on releases
# the host built and signed with a test key (tests/data/release/, kept equal
# to what samband.device.release builds by tests/test_release_cli.py): a good
# release streams through in chunks; each bad one is refused with its code.

import io

from fwtest import data_path, raises
from hub import release

GOOD = "release/good.sbr"


def _read(name):
    with open(data_path(name), "rb") as f:
        return f.read()


PUB = None


def _pub():
    global PUB
    if PUB is None:
        PUB = _read("release/release.pub")
    return PUB


def _code(data, board="vhub", running="0.1.0", kind=None):
    e = raises(release.ReleaseError, release.verify_stream, io.BytesIO(data), _pub(), board, running, None, 512, kind)
    return e.code


def test_good_release_streams_into_a_slot():
    got = []
    with open(data_path(GOOD), "rb") as f:
        m = release.verify_stream(f, _pub(), "vhub", "0.1.0", lambda c: got.append(bytes(c)), 1024)
    assert m["v"] == "1.2.0" and m["board"] == "vhub" and m["kind"] == "app" and m["size"] == 3000
    assert m["version"] == (1, 2, 0) and m["min_version"] == (0, 1, 0)
    image = b"".join(got)
    assert len(got) == 3 and image == bytes((i * 31 + 7) % 251 for i in range(3000))


def test_signature_refusals():
    good = _read(GOOD)
    assert _code(_read("release/other-key.sbr")) == "signature"
    head = release.split_header(good)[2]
    for at in (release.HEAD + 2, head - 64, head - 1):  # manifest, first and last signature bytes
        bad = bytearray(good)
        bad[at] ^= 0x01
        assert _code(bytes(bad)) == "signature"


def test_manifest_board_kind_version_refusals():
    good = _read(GOOD)
    assert _code(_read("release/bad-manifest.sbr")) == "manifest"
    for kw, code in (({"board": "picow"}, "board"), ({"kind": "firmware"}, "kind"),
                     ({"running": "1.2.1"}, "downgrade"), ({"running": "2"}, "downgrade"),
                     ({"running": "1.2"}, "same"), ({"running": "0.0.1"}, "too-old")):
        assert _code(good, **kw) == code, (kw, code)
    assert release.verify_stream(io.BytesIO(good), _pub(), "vhub", "1.1.65535")["v"] == "1.2.0"


def test_image_refusals():
    good = _read(GOOD)
    head = release.split_header(good)[2]
    assert _code(good[:-1]) == "truncated"
    assert _code(good[:head]) == "truncated"
    assert _code(good[:head - 1]) == "truncated"
    assert _code(good + b"!") == "too-long"
    bad = bytearray(good)
    bad[-1] ^= 0x80
    assert _code(bytes(bad)) == "hash"


def test_format_refusals():
    good = _read(GOOD)
    assert _code(b"") == "truncated"
    assert _code(b"MZ\x90\x00" + good[4:]) == "format"
    assert _code(good[:4] + b"\x04\x01" + good[6:]) == "format"  # 1025 > MAX_MANIFEST


def test_version_parsing():
    assert release.parse_version("0.1") == (0, 1, 0)
    assert release.parse_version("10.20.30") == (10, 20, 30)
    for bad in ("", "1..2", "1.2.3.4", "007", "-1", "1.2b", "99999"):
        raises(release.ReleaseError, release.parse_version, bad)
