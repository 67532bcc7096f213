"""The clinician dashboard: its maths against hand-computed values, and its HTTP
behaviour (login, roles, acknowledging, live fragments, read-only) against a real
SQLite database written by the receiver's store (tests/dashboard_kit.py)."""

import re
import sqlite3

import dashboard_kit as kit
import pytest
from test_uplink_store import pg_url  # noqa: F401 (a throwaway PostgreSQL cluster)

from samband.receiver import alerts_db
from samband.receiver.dashboard import agp, data, ecg, users
from samband.receiver.dashboard.app import create_app
from samband.receiver.store import open_store

# ------------------------------------------------------------------ glucose maths


def test_percentile_interpolates_between_order_statistics():
    v = [1, 2, 3, 4]
    # h = (n - 1) p / 100: 0.15, 0.75, 1.5, 2.25, 2.85
    assert agp.percentile(v, 5) == pytest.approx(1.15)
    assert agp.percentile(v, 25) == pytest.approx(1.75)
    assert agp.percentile(v, 50) == pytest.approx(2.5)
    assert agp.percentile(v, 75) == pytest.approx(3.25)
    assert agp.percentile(v, 95) == pytest.approx(3.85)
    assert agp.percentile([7], 95) == 7
    assert agp.percentile([], 50) is None


def test_ranges_use_the_consensus_bands_with_their_edges():
    v = [40, 60, 100, 150, 200, 300, 180, 70, 54, 250]
    r = agp.ranges(v)
    assert r == {"in_range": 40.0,     # 100 150 180 70: 70 and 180 are in range
                 "below_70": 30.0,     # 40 60 54
                 "below_54": 10.0,     # 40: 54 itself is not below 54
                 "above_180": 30.0,    # 200 300 250
                 "above_250": 10.0}    # 300: 250 itself is not above 250
    assert agp.ranges([]) is None


def test_gmi_and_cv_by_hand():
    assert agp.gmi(154) == pytest.approx(3.31 + 3.68368)
    assert agp.gmi(140.4) == pytest.approx(6.668368)
    # mean 150, sample SD sqrt((50^2 + 50^2) / 1) = 70.7107
    assert agp.cv([100, 200]) == pytest.approx(47.14045, rel=1e-6)
    assert agp.cv([100]) is None
    assert agp.mean([]) is None and agp.gmi(None) is None


def test_units_are_converted_to_mg_per_dl_or_refused():
    assert agp.to_mgdl(104, "mg/dL") == 104
    assert agp.to_mgdl(5.5, "mmol/L") == pytest.approx(99.0858)
    assert agp.to_mgdl(0.00104, "kg/L") == pytest.approx(104)  # the Glucose Profile's SI unit
    assert agp.to_mgdl(0.0055, "mol/L") == pytest.approx(99.0858)
    with pytest.raises(agp.GlucoseUnitError):
        agp.to_mgdl(5, "g")


def test_profile_bins_by_time_of_day():
    pts = [(0, 100), (899, 200), (900, 50), (86399, 300)]
    p = agp.profile(pts)
    assert len(p) == 96
    assert p[0]["n"] == 2 and p[0]["p50"] == 150 and p[0]["p25"] == 125 and p[0]["p5"] == 105 and p[0]["p95"] == 195
    assert p[1]["n"] == 1 and p[1]["p5"] == p[1]["p95"] == 50
    assert p[95]["n"] == 1 and p[95]["p50"] == 300
    assert sum(b["n"] for b in p) == 4
    assert p[2]["n"] == 0 and p[2]["p50"] is None


def test_summary_keeps_the_14_days_before_the_newest_reading():
    day = 86400
    samples = [(0, 400), (1 * day, 300), (1 * day + 1, 100), (15 * day, 200)]
    s = agp.summary(samples)
    # (newest - 14 days, newest]: 400 and 300 are 15 and exactly 14 days before the newest
    assert s["n"] == 2 and s["mean"] == 150
    assert s["days"] == 2  # day 1 and day 15 have readings
    assert s["gmi"] == pytest.approx(3.31 + 0.02392 * 150)
    assert agp.summary([])["n"] == 0


def test_days_and_percent_active():
    day = 86400
    assert agp.days([0, 10, day - 1, day, 5 * day]) == 3
    five_min = [i * 300 for i in range(14 * 288)]
    assert agp.active(five_min) == pytest.approx(100.0)
    assert agp.active(five_min[: 7 * 288]) == pytest.approx(50.0)  # a week off
    one_min = [i * 60 for i in range(14 * 1440 // 4)]
    assert agp.active(one_min) == pytest.approx(25.0)  # the interval is found, not configured
    assert agp.active([5]) is None


# ------------------------------------------------------------------ ECG scaling


def test_paper_speed_and_gain():
    assert ecg.x_mm(1.0) == 25.0          # 25 mm/s
    assert ecg.x_mm(0.04) == pytest.approx(1.0)  # a small box is 0.04 s
    assert ecg.y_mm(1000) == 10.0         # 10 mm/mV
    assert ecg.y_mm(-500) == -5.0         # a large box is 0.5 mV
    assert ecg.y_mm(1000, gain=5) == 5.0


def test_frame_samples_are_timed_back_from_the_last():
    f = {"val": [0, 1000, 2000], "period": 7692, "dts": 100, "ctx": {"ns": 500_000_000}}
    got = ecg.frame_samples(f)
    assert [round(t, 6) for t, _ in got] == [100.484616, 100.492308, 100.5]
    assert [v for _, v in got] == [0, 1000, 2000]
    assert ecg.frame_samples({"val": [1], "period": 7692}) is None  # no time: cannot be placed


def test_strip_keeps_the_last_seconds_in_order_without_duplicates():
    a = {"val": [1, 2, 3, 4], "period": 1_000_000, "dts": 13}   # samples at 10 11 12 13 s
    b = {"val": [4, 5], "period": 1_000_000, "dts": 14}          # 13 again, then 14
    samples, start = ecg.strip([b, a], seconds=2)
    assert start == 12 and samples == [(0, 3), (1, 4), (2, 5)]


def test_polyline_grid_and_calibration_in_millimetres():
    pts = ecg.polyline([(0.0, 0), (0.04, 1000), (0.2, -500)], height_mm=40)
    assert pts == [(0.0, 20.0), (1.0, 10.0), (5.0, 25.0)]  # y down from the baseline at 20 mm
    g = ecg.grid(260, 40)
    vertical = [x for x in g if x[0] == x[2]]
    assert len(vertical) == 261 and sum(1 for x in vertical if x[4]) == 53  # every 5th is a large box line
    cal = ecg.calibration(40)
    assert cal[2] == (1, 10.0) and cal[3][0] - cal[2][0] == 5.0  # 1 mV = 10 mm high, 0.2 s = 5 mm wide


# ------------------------------------------------------------------ users file


def test_password_hashes_and_users_file_errors():
    h = users.hash_password("s3cret")
    assert h.startswith("scrypt$") and "s3cret" not in h
    assert users.check_password("s3cret", h) and not users.check_password("s3cre", h)
    assert not users.check_password("x", "scrypt$bad")
    with pytest.raises(users.UsersError, match=r"users.kari.role: one of nurse, doctor, technician"):
        users.parse('[users.kari]\nrole = "admin"\npassword = "%s"\n' % h)
    with pytest.raises(users.UsersError, match=r"users.kari.password: a scrypt hash"):
        users.parse('[users.kari]\nrole = "nurse"\npassword = "plain"\n')
    with pytest.raises(users.UsersError, match="no users"):
        users.parse("")


# ------------------------------------------------------------------ HTTP

GLUCOSE = [40, 60, 100, 150, 200, 300, 180, 70, 54, 250]  # the ranges test's values: mean 140.4


@pytest.fixture
def site(tmp_path):
    db = tmp_path / "r.db"
    s = open_store(db)
    rows = [(i + 1, 1, kit.rd.make(i + 1, kit.CGM, 160212, v, [1, i + 1], unit="mg/dL", dts=kit.T0 + 300 * i,
                                   rec=i + 1)) for i, v in enumerate(GLUCOSE)]
    s.store(kit.HUB, rows)
    alerts_db.migrate(s)
    clinical = kit.put_alert(s, "clinical", "critical", kit.name(kit.CGM), "glucose (CGM) 40 mg/dL", "child A")
    battery = kit.put_alert(s, "battery-low", "warning", kit.name(kit.CGM), "battery 15 %")
    s.close()
    table = users.load(kit.users_file(tmp_path / "users.toml"))
    app = create_app(db, table, now=lambda: kit.T0 + 3000)
    app.testing = True
    return app, db, clinical, battery


def login(app, name):
    c = app.test_client()
    r = c.post("/login", data={"name": name, "password": name + "-pw"})
    assert r.status_code == 302, r.data
    page = c.get("/alerts").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return c, csrf


def test_login_is_required_and_a_wrong_password_is_refused_and_counted(site):
    app, *_ = site
    c = app.test_client()
    r = c.get("/hubs")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = c.post("/login", data={"name": "kari", "password": "wrong"})
    assert r.status_code == 401 and b"wrong name or password" in r.data
    r = c.post("/login", data={"name": "nobody", "password": "nobody-pw"})
    assert r.status_code == 401
    assert app.config["counters"]["login_failed"] == 2
    assert c.get("/hubs").status_code == 302


def test_a_session_cookie_signed_with_another_key_is_not_accepted(site, tmp_path):
    app, db, *_ = site
    c, _ = login(app, "kari")
    other = create_app(db, app.config["samband"]["users"], secret_key=b"x" * 32)
    c2 = other.test_client()
    cookie = c.get_cookie("session")
    c2.set_cookie("session", cookie.value)
    assert c2.get("/hubs").status_code == 302


def test_technician_sees_hubs_and_devices_but_no_clinical_values(site):
    app, db, clinical, battery = site
    c, csrf = login(app, "tore")
    hubs = c.get("/hubs").get_data(as_text=True)
    assert kit.name(kit.CGM) in hubs and "glucose (CGM)" in hubs   # what it measures, not the values
    assert "href=\"/device" not in hubs
    assert ">10<" in hubs  # its reading count
    r = c.get("/device", query_string={"hub": kit.HUB, "dev": kit.name(kit.CGM)})
    assert r.status_code == 403
    alerts = c.get("/alerts").get_data(as_text=True)
    assert "battery 15 %" in alerts and "40 mg/dL" not in alerts and "Acknowledge" not in alerts
    r = c.post(f"/alerts/{battery}/ack", data={"csrf": csrf})
    assert r.status_code == 403
    assert app.config["counters"]["forbidden"] == 2
    s = open_store(db, create=False)
    assert alerts_db.get_alert(s, battery)["acked_at"] is None
    s.close()


def test_nurse_acknowledges_once_and_a_second_ack_says_by_whom(site):
    app, db, clinical, _ = site
    c, csrf = login(app, "kari")
    r = c.post(f"/alerts/{clinical}/ack", data={"csrf": csrf}, headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.json["message"] == f"alert {clinical} acknowledged by kari"
    s = open_store(db, create=False)
    a = alerts_db.get_alert(s, clinical)
    s.close()
    assert a["acked_by"] == "kari" and a["next_at"] is None
    d, csrf2 = login(app, "ola")
    r = d.post(f"/alerts/{clinical}/ack", data={"csrf": csrf2}, headers={"Accept": "application/json"})
    assert r.status_code == 409 and "acknowledged already by kari" in r.json["message"]
    page = d.get("/alerts").get_data(as_text=True)
    assert "kari at" in page
    assert d.post("/alerts/999/ack", data={"csrf": csrf2}, headers={"Accept": "application/json"}).status_code == 409


def test_ack_without_the_session_csrf_token_is_refused(site):
    app, db, clinical, _ = site
    c, _ = login(app, "kari")
    assert c.post(f"/alerts/{clinical}/ack", data={}).status_code == 403
    assert c.post(f"/alerts/{clinical}/ack", data={"csrf": "forged"}).status_code == 403
    s = open_store(db, create=False)
    assert alerts_db.get_alert(s, clinical)["acked_at"] is None
    s.close()


def test_device_page_shows_the_numbers_of_the_database(site):
    app, *_ = site
    c, _ = login(app, "ola")
    page = c.get("/device", query_string={"hub": kit.HUB, "dev": kit.name(kit.CGM)}).get_data(as_text=True)

    def shown(k):
        return re.search(r'data-k="%s">([^<]*)<' % k, page).group(1)

    assert shown("n") == "10"
    assert shown("mean") == "140.4 mg/dL"
    assert shown("gmi") == "6.7 %"          # 3.31 + 0.02392 * 140.4 = 6.668
    assert shown("in_range") == "40.0 %" and shown("below_70") == "30.0 %" and shown("below_54") == "10.0 %"
    assert shown("above_180") == "30.0 %" and shown("above_250") == "10.0 %"
    assert shown("latest") == "250 mg/dL"
    # ten readings 5 minutes apart from 00:00: bins 00:00, 00:15, 00:30, 00:45 hold 3, 3, 3, 1
    assert 'data-bins="4"' in page
    median = re.search(r'class="median" points="([^"]+)"', page).group(1)
    assert len(median.split()) == 4
    assert c.get("/device", query_string={"hub": kit.HUB, "dev": "nope"}).status_code == 404


def test_live_fragment_shows_what_was_stored_since(site):
    app, db, *_ = site
    c, _ = login(app, "kari")
    frag = c.get("/hubs?fragment=1").get_data(as_text=True)
    assert "<html" not in frag and ">10<" in frag
    s = open_store(db, create=False)
    s.store(kit.HUB, [(11, 1, kit.rd.make(11, kit.CGM, 160212, 99, [1, 11], unit="mg/dL", dts=kit.T0 + 3000))])
    s.close()
    assert ">11<" in c.get("/hubs?fragment=1").get_data(as_text=True)
    full = c.get("/hubs").get_data(as_text=True)
    assert 'data-live="/hubs?fragment=1"' in full


def test_pages_read_on_a_read_only_connection(site):
    app, db, *_ = site
    r = data.Reader(db)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        r.conn.execute("DELETE FROM readings")
    r.close()


def test_no_alerts_table_is_an_empty_list_not_an_error(tmp_path):
    db = tmp_path / "r.db"
    open_store(db).close()
    app = create_app(db, users.load(kit.users_file(tmp_path / "u.toml")))
    c, _ = app.test_client(), None
    c.post("/login", data={"name": "kari", "password": "kari-pw"})
    r = c.get("/alerts")
    assert r.status_code == 200 and b"No alerts." in r.data
    assert b"No hub has sent anything yet." in c.get("/hubs").data


# ------------------------------------------------------------------ CLI


def run_cli(*args, stdin=""):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "samband.cli", "dashboard", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_adduser_writes_a_hash_and_refuses_a_second_user_of_the_same_name(tmp_path):
    f = tmp_path / "users.toml"
    r = run_cli("adduser", "kari", "--role", "nurse", "--users", str(f), stdin="kari-pw\n")
    assert r.returncode == 0, r.stderr
    assert (f.stat().st_mode & 0o777) == 0o600
    assert "kari-pw" not in f.read_text()
    table = users.load(f)
    assert table["kari"]["role"] == "nurse" and users.check_password("kari-pw", table["kari"]["password"])
    r = run_cli("adduser", "kari", "--role", "doctor", "--users", str(f), stdin="x\n")
    assert r.returncode == 1 and r.stderr.strip() == f"samband: {f} has a user kari already"


@pytest.mark.parametrize("args, why", [
    ([], "needs --users FILE"),
    (["--users", "{tmp}/none.toml"], "cannot read the users file"),
    (["--users", "{users}", "--db", "{tmp}/none.db"], "cannot read the database"),
    (["--users", "{users}", "--db", "{db}", "--listen", "8080"], "--listen wants HOST:PORT"),
    (["--users", "{users}", "--db", "{db}", "--listen", "127.0.0.1:99999"], "is not a port number"),
])
def test_cli_errors_are_one_line(tmp_path, args, why):
    db = tmp_path / "r.db"
    open_store(db).close()
    uf = kit.users_file(tmp_path / "users.toml")
    args = [a.format(tmp=tmp_path, users=uf, db=db) for a in args]
    r = run_cli(*args)
    assert r.returncode == 1 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_postgresql_pages_read_only_and_ack(pg_url, tmp_path):  # noqa: F811
    kit.build(pg_url, cgm_days=1).close()
    app = create_app(pg_url, users.load(kit.users_file(tmp_path / "users.toml")))
    c, csrf = login(app, "kari")
    hubs = c.get("/hubs").get_data(as_text=True)
    assert f'data-device="{kit.name(kit.CGM)}"' in hubs and ">288<" in hubs
    page = c.get("/device", query_string={"hub": kit.HUB, "dev": kit.name(kit.CGM)}).get_data(as_text=True)
    assert 'data-k="n">288<' in page and 'data-bins="96"' in page
    s = open_store(pg_url, create=False)
    clinical = [a for a in alerts_db.list_alerts(s) if a["kind"] == "clinical"][0]["id"]
    r = c.post(f"/alerts/{clinical}/ack", data={"csrf": csrf}, headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert alerts_db.get_alert(s, clinical)["acked_by"] == "kari"
    s.close()
    import psycopg
    r = data.Reader(pg_url)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        r.rows("DELETE FROM readings")
    r.close()


def test_glucose_shown_in_mmol_per_l_with_the_consensus_figures(site):
    app, db, *_ = site
    mm = create_app(db, app.config["samband"]["users"], glucose_unit="mmol/L")
    c, _ = login(mm, "kari")
    page = c.get("/device", query_string={"hub": kit.HUB, "dev": kit.name(kit.CGM)}).get_data(as_text=True)
    assert 'data-k="mean">7.8 mmol/L<' in page  # 140.4 / 18.0156 = 7.79
    assert "in range 3.9–10.0 mmol/L" in page and "below 3.0 mmol/L" in page and "above 13.9 mmol/L" in page
    assert 'data-k="in_range">40.0 %<' in page  # the same statistics
    assert ">13.9</text>" in page  # the AGP's level labels too
    assert [agp.shown(v, "mmol/L") for v in (54, 70, 180, 250)] == ["3.0", "3.9", "10.0", "13.9"]
    with pytest.raises(agp.GlucoseUnitError):
        create_app(db, {}, glucose_unit="mg")


def test_a_login_expires_after_its_shift(site):
    app, db, *_ = site
    clock = [kit.T0]
    app = create_app(db, app.config["samband"]["users"], now=lambda: clock[0], session_s=3600)
    c, _ = login(app, "kari")
    clock[0] += 3599
    assert c.get("/hubs").status_code == 200
    clock[0] += 2
    r = c.get("/hubs")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert app.config["counters"]["session_expired"] == 1
    assert c.get("/hubs").status_code == 302  # the session was cleared, not just refused once


def test_glucose_that_cannot_be_read_is_left_out_and_counted_not_guessed(site):
    app, db, *_ = site
    s = open_store(db, create=False)
    s.store(kit.HUB, [
        (20, 1, kit.rd.make(20, kit.CGM, 160212, 7, [1, 20], unit="mmol/mol", dts=kit.T0 + 4000)),
        (21, 1, kit.rd.make(21, kit.CGM, 160212, float("nan"), [1, 21], unit="mg/dL", dts=kit.T0 + 4100)),
        (22, 1, kit.rd.make(22, kit.CGM, 160212, 100, [1, 22], unit="mg/dL")),  # no device or hub time
    ])
    s.close()
    c, _ = login(app, "kari")
    page = c.get("/device", query_string={"hub": kit.HUB, "dev": kit.name(kit.CGM)}).get_data(as_text=True)
    assert "Left out: 1 unknown unit, 1 not a number, 1 no time." in page
    assert 'data-k="n">10<' in page and 'data-k="mean">140.4 mg/dL<' in page  # the ten good ones only


def test_patients_named_by_hub_from_the_alerts_rules(site, tmp_path):
    app, db, *_ = site
    app = create_app(db, app.config["samband"]["users"], patients={kit.HUB: "child A"})
    c, _ = login(app, "kari")
    assert '<span class="patient">— child A</span>' in c.get("/hubs").get_data(as_text=True)
    page = c.get("/device", query_string={"hub": kit.HUB, "dev": kit.name(kit.CGM)}).get_data(as_text=True)
    assert '<span class="patient">child A</span>: Device' in page
    rules = tmp_path / "alerts.toml"
    rules.write_text('[patients]\n"%s" = "child A"\n\n[groups.nurse]\nack_timeout_s = 120\n'
                     'channels = [{type = "webhook", url = "http://127.0.0.1:9/nurse"}]\n\n'
                     '[[routes]]\ngroups = ["nurse"]\n' % kit.HUB)
    from samband.cli import dashboard, parser
    args = parser().parse_args(["dashboard", "--users", str(kit.users_file(tmp_path / "u.toml")), "--db", str(db),
                                "--rules", str(rules), "--listen", "127.0.0.1:0"])
    server, served, url, n = dashboard.make_server(args)
    server.close()
    assert url.startswith("http://127.0.0.1:") and n == 3
    c, _ = login(served, "ola")
    assert "— child A</span>" in c.get("/hubs").get_data(as_text=True)
    r = run_cli("--users", str(kit.users_file(tmp_path / "u.toml")), "--db", str(db), "--rules",
                str(tmp_path / "nope.toml"))
    assert r.returncode == 1 and "cannot read the rules file" in r.stderr


def test_a_meter_has_no_sensor_wear_and_its_si_units_are_converted(tmp_path):
    db = tmp_path / "r.db"
    s = open_store(db)
    meter = bytes.fromhex("00c05a4b000009")
    # the Glucose Profile sends kg/L with an exponent: 104e-5 kg/L = 104 mg/dL; 55e-4 mol/L = 99.1 mg/dL
    s.store(kit.HUB, [(1, 1, kit.rd.make(1, meter, 160184, 104, [1, 1], exp=-5, unit="kg/L", dts=kit.T0, rec=1)),
                      (2, 1, kit.rd.make(2, meter, 160184, 55, [1, 2], exp=-4, unit="mol/L", dts=kit.T0 + 3600,
                                         rec=2))])
    s.close()
    app = create_app(db, users.load(kit.users_file(tmp_path / "u.toml")))
    c, _ = app.test_client(), None
    c.post("/login", data={"name": "kari", "password": "kari-pw"})
    page = c.get("/device", query_string={"hub": kit.HUB, "dev": kit.name(meter)}).get_data(as_text=True)
    assert 'id="meter"' in page and 'id="sufficiency"' not in page
    assert 'data-k="active">1 / - %<' in page
    assert 'data-k="mean">101.5 mg/dL<' in page  # (104 + 99.09) / 2
