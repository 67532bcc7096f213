# The pure parts of HTTPS delivery (hub/otahttp.py) on both runtimes: which URLs an
# offer may name, the Range request, and the checks on the answer's head before a
# byte is stored; an offer with a bad URL stages nothing.

import os

from fwtest import data_path, raises
from hub import cbor, ota, otahttp, release
from hub.otaslot import OtaError


def test_urls():
    assert otahttp.parse_url("https://updates.example.org/r/vhub-1.1.0.sbr") == \
        ("updates.example.org", 443, "/r/vhub-1.1.0.sbr")
    assert otahttp.parse_url("https://10.0.0.2:8443") == ("10.0.0.2", 8443, "/")
    for bad in ("http://example.org/x", "https://", "https://ex ample.org/", "https://e.org:0/", "https://e.org:99999/",
                "https://e.org:x/", "https://e.org/a b", "https://e.org/a\r\nX: y", "https://" + "a" * 200, 7, None):
        assert raises(OtaError, otahttp.parse_url, bad).code == "format", bad


def test_request_and_answer_head():
    assert otahttp.request("e.org", 443, "/r", 0, 1023) == (b"GET /r HTTP/1.1\r\nHost: e.org\r\nRange: bytes=0-1023"
                                                            b"\r\nConnection: close\r\nUser-Agent: samband-hub\r\n\r\n")
    assert b"Host: e.org:8443\r\n" in otahttp.request("e.org", 8443, "/r", 0, 1)
    good = ["HTTP/1.1 206 Partial Content", "Content-Range: bytes 1024-2047/5000", "content-length: 1024"]
    otahttp.check_head(good, 1024, 2047, 5000)
    for lines in (["HTTP/1.1 200 OK", "Content-Length: 5000"],                       # Range ignored
                  ["HTTP/1.1 416 Range Not Satisfiable"],
                  [good[0], "Content-Range: bytes 0-1023/5000", good[2]],            # another range
                  [good[0], "Content-Range: bytes 1024-2047/6000", good[2]],         # another image
                  [good[0], good[1], "Content-Length: 1000"],
                  [good[0], good[1], good[2], "Transfer-Encoding: chunked"],
                  ["SSH-2.0-OpenSSH"], []):
        assert raises(OtaError, otahttp.check_head, lines, 1024, 2047, 5000).code == "http", lines


def test_an_offer_with_a_bad_url_stages_nothing():
    root = "/tmp/samband-otahttp-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(root)
    with open(data_path("release/release.pub"), "rb") as f:
        key = f.read()
    with open(data_path("ota/good.sbr"), "rb") as f:
        rel = f.read()
    o = ota.Ota("vhub", "1.0.0", key, None, fw=root)
    o.start()
    o.on_message(cbor.dumps({"o": rel[:release.split_header(rel)[2]], "cs": 256, "u": "http://plain.example/x"}))
    assert o.state == "refused" and o.refused == "format" and o.url is None
    assert raises(OSError, os.stat, root + "/ota")
    ota.remove_tree(root)


class _Link:
    def __init__(self, b):
        self.b = b


class _Bearer:
    def __init__(self, kind, fixed=False):
        self.kind = kind
        if fixed:
            self.fixed_path = True

    async def open(self, host, port, ssl=None, server_hostname=None):
        raise OSError("not here")


class _Manager:
    def __init__(self, link):
        self.link = link

    def routine_link(self):
        return self.link


class _Up:
    def __init__(self, link, ca=True):
        self.manager = None if link == "direct" else _Manager(link)
        self.ota = ota.Ota("vhub", "1.0.0", b"k" * 32, {"budget_bytes": 1})
        self._ca = ca

    def tls_context(self):
        return "ctx" if self._ca else None


def test_the_routine_bearer_fetches_where_it_allows():
    wifi, cell = _Bearer("wifi"), _Bearer("cellular")
    up = _Up(_Link(wifi))
    h = otahttp.opener_of(up)
    assert h == (wifi.open, "ctx") and not up.ota.cellular
    up = _Up(_Link(cell))
    assert otahttp.opener_of(up) == (cell.open, "ctx") and up.ota.cellular  # the budget counts on cellular
    assert otahttp.opener_of(_Up(_Link(_Bearer("hostnet", fixed=True)))) is None  # reaches only the broker
    assert otahttp.opener_of(_Up(None)) is None  # no bearer up
    assert otahttp.opener_of(_Up(_Link(wifi), ca=False)) is None  # no CA: never unverified
    h = otahttp.opener_of(_Up("direct"))
    assert h == (otahttp._direct, "ctx")


def test_an_https_fetch_waits_for_alarms():
    o = ota.Ota("vhub", "1.0.0", b"k" * 32, None)
    o.state, o.url = "fetch", "https://e.org/r"
    o.stage.cs = 256
    assert o.http_due(0) and not o.http_due(1)
    o.url = None
    assert not o.http_due(0)  # chunks over MQTT: the uplink asks for them
