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

import nacl.bindings as nb
import pytest
from conftest import firmware_tree
from test_ota_e2e import release_of
from test_uplink import check_exactly_once, drained

from hub import release as fmt
from samband.device.ota import Rollout
from samband.rig.broker import RECEIVER_USER, make_certs
from samband.rig.uplink import UplinkRig
from samband.vhub import Flash

DATA = Path(__file__).parent / "data"
REL = DATA / "ota" / "good.sbr"
KEY = DATA / "release" / "release.pub"
CS = 64


class Server:
    """HTTPS on 127.0.0.1 serving the release file REL at /r/good.sbr, with Range (or, honest=False, without)."""

    def __init__(self, certs, honest=True, data=None, stall=False):
        self.data = data or REL.read_bytes()
        self.base = fmt.split_header(self.data)[2]  # where the image starts
        self.image = self.data[self.base:]
        self.ranges = []
        self.stalled = threading.Event()  # stall: each request is held (no answer) until close()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path != "/r/good.sbr":
                    self.send_error(404)
                    return
                rng = self.headers.get("Range", "")
                if stall:
                    srv.ranges.append(rng)
                    srv.stalled.wait()
                    return
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
        self.stalled.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    make_certs(d / "ca")
    make_certs(d / "other")  # a CA that did not sign the server's certificate
    return d


def hub(mpy, server, ca, stage, steps=1000, budget=0, timeout=60):
    p = mpy(["ota_https_check.py", str(server.port), str(ca), str(stage), server.url, str(REL), str(KEY),
             str(steps), str(budget), str(timeout)], heap="200k", timeout=120)
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


def test_a_server_that_stalls_costs_one_timeout_a_request(tmp_path, certs, mpy):
    srv = Server(certs / "ca", stall=True)
    try:
        got = hub(mpy, srv, certs / "ca" / "ca.der", tmp_path / "fw", steps=2, timeout=1)
        assert got["have"] == 0 and got["refused"] == "http" and got["counters"]["http_errors"] == 2, got
        assert len(srv.ranges) == 2, srv.ranges  # each asked once, then given up
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


def test_an_update_over_https_on_the_virtual_hub(tmp_path):
    """The virtual hub (tests/data/uplink_main.py, hub.ota.run with ota.http_via as hub/app.py)
    offered a tree release with a URL: it fetches the image over HTTPS from a server whose
    certificate the broker's CA signed while it keeps sending readings; applies, boots the
    trial, confirms; no chunk went over MQTT; every reading exactly once. Its uplink has no
    provisioned bearers, so it connects directly (ota._direct), as its MQTT client does: the
    virtual hub's hostnet bearer is a fixed path to the broker and carries no HTTPS fetch."""
    seed = bytes(range(100, 132))
    good = release_of(tmp_path, "0.2.0")
    rig = UplinkRig(tmp_path / "rig", heap="300k", firmware=firmware_tree())
    srv = None
    try:
        hub_id = "00005a4d00e3"
        h = rig.add_hub(hub_id, DATA / "uplink_main.py", {"total": 160, "alarm_every": 3, "interval_ms": 50,
                                                          "ota": {"window": 8, "trial_s": 60}})
        Flash(h.flash).write_files({"/keys/release.pub": nb.crypto_sign_seed_keypair(seed)[0]})
        rig.start()
        srv = Server(rig.broker.folder, data=good)
        login = dict(host="localhost", port=rig.broker.port, ca=rig.broker.ca_pem, user=RECEIVER_USER,
                     password=rig.broker.users[RECEIVER_USER])
        r = Rollout(good, [hub_id], chunk=4096, url=srv.url, **login).start()
        try:
            assert r.wait(90), f"hub at {r.progress.get(hub_id)}"
            r.clear()
        finally:
            r.close()
        n = (len(srv.image) + 4095) // 4096
        assert r.sent[hub_id] == 0 and h._read("/fw/active") == b"a"  # nothing over MQTT; runs slot a
        got = sorted(srv.ranges)
        assert got[0][0] == 0 and got[-1][1] == len(srv.image) - 1 and len(got) == (n + 7) // 8, got
        assert h.vhub.resets == ["power-on", "hard"], h.vhub.resets
        rig.wait(lambda: drained(rig, h, 160), 90, "every reading delivered")
        check_exactly_once(rig, h)
    finally:
        if srv is not None:
            srv.close()
        rig.stop()
