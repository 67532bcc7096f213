"""A release's chunks over HTTPS (hub/otahttp.py through hub.ota.Ota, on the unix port):
the offer names an https:// URL, the hub fetches the image with Range requests over
TLS verified with the test CA, from a local HTTPS server (this file's, which logs
each range asked for). Resumed after a power cut asking only for what is missing;
a server the CA did not sign, a server that ignores Range, and the cellular budget."""

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hub import release as fmt
from samband.rig.broker import make_certs

DATA = Path(__file__).parent / "data"
REL = DATA / "ota" / "good.sbr"
KEY = DATA / "release" / "release.pub"
CS = 64


class Server:
    """HTTPS on 127.0.0.1 serving the release file REL at /r/good.sbr, with Range (or, honest=False, without)."""

    def __init__(self, certs, honest=True):
        self.data = REL.read_bytes()
        self.base = fmt.split_header(self.data)[2]  # where the image starts
        self.image = self.data[self.base:]
        self.ranges = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path != "/r/good.sbr":
                    self.send_error(404)
                    return
                rng = self.headers.get("Range", "")
                if not honest or not rng.startswith("bytes="):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(srv.data)))
                    self.end_headers()
                    self.wfile.write(srv.data)
                    return
                lo, hi = (int(x) for x in rng[6:].split("-"))
                srv.ranges.append((lo - srv.base, hi - srv.base))  # as image offsets
                body = srv.data[lo:hi + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(srv.data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://localhost:{self.port}/r/good.sbr"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    make_certs(d / "ca")
    make_certs(d / "other")  # a CA that did not sign the server's certificate
    return d


def hub(mpy, server, ca, stage, steps=1000, budget=0):
    p = mpy(["ota_https_check.py", str(server.port), str(ca), str(stage), server.url, str(REL), str(KEY),
             str(steps), str(budget)], heap="200k", timeout=120)
    assert p.returncode == 0, p.stderr.decode() + p.stdout.decode()
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def test_fetched_over_https_and_resumed_after_a_power_cut(tmp_path, certs, mpy):
    srv = Server(certs / "ca")
    try:
        n = (len(srv.image) + CS - 1) // CS
        got = hub(mpy, srv, certs / "ca" / "ca.der", tmp_path / "fw", steps=2)  # then the power goes
        assert got["state"] == "fetch" and got["have"] == 8 and got["n"] == n and got["refused"] is None, got
        first = list(srv.ranges)
        assert first == [(0, 4 * CS - 1), (4 * CS, 8 * CS - 1)], first
        got = hub(mpy, srv, certs / "ca" / "ca.der", tmp_path / "fw")  # power back: only the rest
        assert got["state"] == "apply" and got["have"] == n and got["verified"], got
        later = srv.ranges[2:]
        assert later[0][0] == 8 * CS and later[-1][1] == len(srv.image) - 1, later
        assert all(a[1] + 1 == b[0] for a, b in zip(srv.ranges, srv.ranges[1:])), srv.ranges  # none twice
        assert got["counters"]["chunks"] == n - 8 and got["counters"]["http_errors"] == 0
    finally:
        srv.close()


def test_a_server_the_ca_did_not_sign_gets_nothing(tmp_path, certs, mpy):
    srv = Server(certs / "ca")
    try:
        got = hub(mpy, srv, certs / "other" / "ca.der", tmp_path / "fw", steps=3)
        assert got["have"] == 0 and got["refused"] == "http" and got["counters"]["http_errors"] == 3, got
        assert got["state"] == "fetch" and srv.ranges == []  # the handshake failed: no request was sent
    finally:
        srv.close()


def test_a_server_that_ignores_range_is_refused_and_nothing_stored(tmp_path, certs, mpy):
    srv = Server(certs / "ca", honest=False)
    try:
        got = hub(mpy, srv, certs / "ca" / "ca.der", tmp_path / "fw", steps=2)
        assert got["have"] == 0 and got["refused"] == "http" and got["counters"]["http_errors"] == 2, got
    finally:
        srv.close()


def test_within_the_cellular_budget(tmp_path, certs, mpy):
    srv = Server(certs / "ca")
    try:
        got = hub(mpy, srv, certs / "ca" / "ca.der", tmp_path / "fw", budget=6 * CS)
        assert got["have"] == 6 and got["st"] == "budget" and got["state"] == "fetch", got
        assert srv.ranges == [(0, 4 * CS - 1), (4 * CS, 6 * CS - 1)], srv.ranges
    finally:
        srv.close()
