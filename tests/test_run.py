"""`make run` (samband run): broker, receiver, BLE bridge with emulated devices and a virtual hub;
readings travel BLE -> hub (sealed journal) -> MQTT over TLS -> receiver database, and show.
A rerun of the same rig continues it: bonds hold on both sides, and the devices' memory
(stored measurements, record numbers, clocks) is theirs, so nothing is stored twice."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from samband.receiver.store import open_store
from samband.rig import live, netns

KINDS = ("glucose", "cgm", "polar", "bp", "plx", "thermo", "scale")


def run_rig(data, until, timeout=300):
    """`samband run` with its defaults (as `make run`), the user's data folder being data, stopped with
    Ctrl-C (SIGINT) once until(output so far) is true -- not after a fixed time, which a busy machine
    would not keep."""
    env = dict(os.environ, XDG_DATA_HOME=str(data), PYTHONUNBUFFERED="1")
    env.pop("SAMBAND_DB", None)
    p = subprocess.Popen([sys.executable, "-m", "samband.cli", "run"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    # both pipes are drained as the rig writes: a rig whose stderr (log warnings) fills a
    # pipe nobody reads blocks on its next write, and then it cannot even stop
    lines, errs = [], []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
    err_reader = threading.Thread(target=lambda: errs.extend(iter(p.stderr.readline, "")), daemon=True)
    reader.start()
    err_reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not until("".join(lines)):
            assert p.poll() is None, "".join(lines)[-3000:] + "".join(errs)[-3000:]
            assert time.monotonic() < deadline, "the rig did not get there: " + "".join(lines)[-3000:]
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            err_reader.join(10)
            raise AssertionError("the rig did not stop within 60 s of Ctrl-C; its stderr (thread stacks after "
                                 "20 s):\n" + "".join(errs)[-6000:]) from None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    reader.join(10)
    err_reader.join(10)
    out = "".join(lines)
    assert p.returncode == 0, "".join(errs)[-6000:]
    assert "\x1b[" not in out  # not a terminal: plain lines, no live view
    return out


def dashboard_page(out, root):
    """Log in to the dashboard the banner names, with the demo login from its 0600 file: (hubs page, the
    answer to a wrong password, url)."""
    import http.cookiejar
    import stat
    import urllib.error
    import urllib.parse
    import urllib.request
    url = out.split("clinician dashboard on ")[1].split()[0]
    login = root / "demo-login"
    assert f"its password in {login}" in out and stat.S_IMODE(login.stat().st_mode) == 0o600
    creds = dict(x.split(": ", 1) for x in login.read_text().splitlines())
    assert creds["password"] not in out and len(creds["password"]) >= 16
    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        web.open(url + "login", urllib.parse.urlencode({"name": "demo", "password": "guess"}).encode(), timeout=30)
        wrong = 200
    except urllib.error.HTTPError as e:
        wrong = e.code
    form = urllib.parse.urlencode({"name": creds["user"], "password": creds["password"]}).encode()
    return web.open(url + "login", form, timeout=30).read().decode(), wrong, url


def frames(out):
    return out.split("hub boot")[1:]


def last_frame(out):
    return out.rsplit("hub boot", 1)[1]


def test_run_shows_readings_and_a_rerun_continues(tmp_path):
    data = tmp_path / "data"
    root, db = data / "samband" / "rig", data / "samband" / "samband.db"
    def collected(out):
        f = frames(out)
        if not f or "uplink connected" not in f[-1] or "ECG 73 samples" not in f[-1]:
            return False
        if int(f[-1].split("stored this run ")[1].split(",")[0]) <= 50 or not db.exists():
            return False
        st = open_store(str(db))
        try:
            bp = [r for r in st.readings(device="C0:5A:4B:00:00:04/r") if r["mdc"] == 150020]
            recs = {r["rec"] for r in st.readings(device="C0:5A:4B:00:00:01/r") if "rec" in r}
        finally:
            st.close()
        if len(bp) >= 3 and len(recs) >= 20 and all(f"  {k} " in f[-1] for k in KINDS):
            pages.append(dashboard_page(out, root))  # while the rig runs
            return True
        return False

    pages = []
    out = run_rig(data, collected)
    # the dashboard on the rig's database: its address in the banner, the demo login works, the hub is there
    page, wrong, url = pages[0]
    assert url.startswith("http://127.0.0.1:") and wrong == 401
    assert 'data-hub="00005a4d0001"' in page and "C0:5A:4B:00:00:01/r" in page, page[:2000]
    import urllib.request
    with pytest.raises(OSError):  # stopped with the rig
        urllib.request.urlopen(url + "login", timeout=5)
    assert f"receiver into {db}" in out
    assert "with 7 emulated devices" in out
    if netns.available() is None:  # as root (CI): two bearers, veths in namespaces, each one's state shown
        assert "samband: two bearers, a and b: veths sb-a and sb-b" in out and " in namespace sb" in out
    else:
        assert "samband: broker on localhost:" in out and "samband: no network namespaces (" in out
    assert f"new rig in {root}" in out
    last = last_frame(out)
    for kind in KINDS:
        assert f"  {kind} " in last, out[-3000:]
    assert "glucose" in last and "mg/dL" in last and "ECG 73 samples at 130 Hz" in last
    assert "mdc " not in out  # names, not codes
    assert "uplink connected" in last and "problems" not in last and "bond lost" not in last
    if netns.available() is None:
        assert ("bearers: a (hostnet) up, session live, carries routine data; b (hostnet) up, session live"
                in last), last
    assert last.count("connected") >= 8, last
    stored = int(last.split("stored this run ")[1].split(",")[0])
    assert stored > 50, last
    assert out.rstrip().endswith(f"readings this run into {db}; `samband readings` shows them")
    # `samband readings` looks where `make run` wrote
    env = dict(os.environ, XDG_DATA_HOME=str(data))
    env.pop("SAMBAND_DB", None)
    p = subprocess.run([sys.executable, "-m", "samband.cli", "readings"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and len(json.loads(p.stdout)) >= stored, p.stderr
    st = open_store(str(db))
    bp = [r for r in st.readings(device="C0:5A:4B:00:00:04/r") if r["mdc"] == 150020]
    glucose = [r["rec"] for r in st.readings(device="C0:5A:4B:00:00:01/r") if "rec" in r and r["mdc"] != 8417864]
    st.close()
    assert len(bp) == 3 and len(glucose) == 20, (bp, glucose)

    # the same rig again: the hub and the devices remember each other, and what was sent
    def settled(out):
        # every device connected again (the cuff re-subscribed, the meters backfilled) and two more frames
        f = frames(out)
        for i, frame in enumerate(f):
            lines = [x for x in frame.splitlines() if x.startswith("  ")]
            if "uplink connected" in frame and sum(" connected " in x for x in lines) >= len(KINDS):
                return len(f) - i >= 3
        return False

    out2 = run_rig(data, settled)
    assert f"rig in {root} continues" in out2
    last2 = last_frame(out2)
    assert "bond lost" not in out2 and "problems" not in last2, last2
    for kind in ("glucose", "cgm"):  # the bonded devices: connected, not refused
        line = [x for x in last2.splitlines() if x.startswith(f"  {kind} ")][0]
        assert " connected " in line, last2
    st = open_store(str(db))
    bp2 = [r for r in st.readings(device="C0:5A:4B:00:00:04/r") if r["mdc"] == 150020]
    glucose2 = [r["rec"] for r in st.readings(device="C0:5A:4B:00:00:01/r") if "rec" in r and r["mdc"] != 8417864]
    hub = st.hubs()[0]
    st.close()
    assert len(bp2) == 3, bp2  # the cuff does not send confirmed measurements again with new times
    assert sorted(glucose2) == sorted(set(glucose2)) and len(glucose2) == 20, glucose2
    assert hub["duplicates"] == 0 and hub["refetched"] == 0, hub


def test_a_new_rig_refuses_a_database_that_knows_an_older_hub_of_the_same_id(tmp_path):
    db = tmp_path / "samband.db"
    from hub import reading
    st = open_store(str(db))
    st.store("00005a4d0001", [(1, 1, reading.make(1, b"\x01" * 7, 160184, 104, [1, 1]))])
    st.close()
    p = subprocess.run([sys.executable, "-m", "samband.cli", "run", "--seconds", "1", "--root", str(tmp_path / "r"),
                        "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "holds 1 readings of hub 00005a4d0001" in p.stderr and "--db" in p.stderr


def test_the_view_says_when_the_link_is_down_and_lag_and_backlog_grow():
    board = live.Board([("C0:5A:4B:00:00:01/r", "glucose", "Samband Glucose")])
    assert "waiting for its first status" in live.head_line(board.frame(None))
    from hub import reading
    from samband.reading import Reading
    board.on_reading("00005a4d0001", 1, Reading.from_map(reading.make(1, b"\x01\xc0\x5a\x4b\x00\x00\x01", 160184,
                                                                      104, [1, 1], unit="mg/dL", hts=1_000_000)))
    dev = {"addr": "C0:5A:4B:00:00:01/r", "connected": True}
    # before its first connection the uplink is connecting, not down
    f = board.frame({"boot": 1, "uplink": {"connected": False, "pending": 3}}, now=1_000.5, mono=9.0)
    assert "uplink connecting" in live.head_line(f) and "DOWN" not in live.head_line(f)
    up = {"boot": 1, "uplink": {"connected": True, "pending": 0}, "ble": {"devices": [dev]}}
    f = board.frame(up, now=1_001.0, mono=10.0)
    assert "uplink connected" in live.head_line(f) and "newest 1.0 s old" in live.head_line(f)
    assert f["devices"][0]["last"] == "glucose 104 mg/dL" and f["devices"][0]["stored"] == 1
    down = {"boot": 1, "uplink": {"connected": False, "pending": 40,
                                  "error": "Traceback (most recent call last):\n  ...\nOSError: broker gone\n"},
            "ble": {"devices": [dev]}}
    board.frame(down, now=1_002.0, mono=11.0)
    f = board.frame(dict(down, uplink=dict(down["uplink"], pending=90)), now=1_041.0, mono=50.0)
    line = live.head_line(f)
    assert "uplink DOWN for 39.0 s (OSError: broker gone)" in line and "backlog on the hub 90 records" in line
    assert "newest 41.0 s old" in line
    f = board.frame(up, now=1_042.0, mono=51.0)
    assert "uplink connected" in live.head_line(f) and f["down_for"] is None
    bond = dict(dev, connected=False, needs_pairing=True)
    f = board.frame(dict(up, ble={"devices": [bond]}), now=1_043.0, mono=52.0)
    assert f["devices"][0]["state"] == "bond lost: needs pairing"


def test_uplink_demo_summary_explains_its_numbers():
    from samband.rig.uplink import explain
    lines = explain([
        {"hub": "00005a4d00d0", "stored": 13, "duplicates": 3, "refetched": 1, "backlog": 0, "rejected": {}},
        {"hub": "00005a4d00d1", "stored": 1, "duplicates": 10, "refetched": 10, "backlog": 2,
         "rejected": {"replayed": 1}},
    ])
    assert lines[0] == ("hub 00005a4d00d0: 16 readings arrived, 13 stored as new; 1 was a meter record already "
                        "stored through another hub (kept once); 2 came again in re-sent batches (an ack lost or "
                        "late) and were recognised by (hub, seq), not stored twice; 0 still on the hub; "
                        "rejected: none")
    assert "10 were meter records already stored through another hub" in lines[1]
    assert "2 still on the hub; rejected: replayed 1" in lines[1]
    assert "the same emulated meter" in lines[2] and "stores each meter record once" in lines[2]


def test_the_view_shows_each_bearer_and_run_says_when_it_cannot_make_namespaces(monkeypatch):
    board = live.Board([])
    up = {"boot": 1, "uplink": {"connected": True, "pending": 0, "bearer": "b", "bearers": [
        {"name": "a", "kind": "hostnet", "state": "degraded", "reason": "traffic", "live": False},
        {"name": "b", "kind": "hostnet", "state": "up", "reason": None, "live": True}]}}
    lines = live.plain_lines(board.frame(up))
    assert lines[1] == ("  bearers: a (hostnet) degraded/traffic, session none; "
                        "b (hostnet) up, session live, carries routine data")
    none = {"boot": 1, "uplink": dict(up["uplink"], bearer="none")}
    assert live.bearer_line(board.frame(none)).endswith("| NO BEARER can carry data")
    assert live.bearer_line(board.frame({"boot": 1, "uplink": {"connected": True}})) == ""  # the default route
    # not root (or no ip/nft): one line, and the rig runs on the host's network
    monkeypatch.setattr(netns, "available", lambda: "network namespaces need root (run as root, as CI does)")
    said = []
    lab, line = live.two_bearers(said.append)
    assert lab is None and said == [line] and "\n" not in line
    assert line.startswith("samband: no network namespaces (network namespaces need root")
    assert "the virtual hub uses the host's network" in line
