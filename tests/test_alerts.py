"""Alerts at the receiver (host/samband/receiver/alerts*.py): each alert raised once and
cleared, no flapping, escalation to the next group after the ack timeout, stopped by an
acknowledgement; the rules file's one-line errors; the three channels really delivering
(a Mosquitto broker, a local HTTP server, aiosmtpd).

Readings and hub status go in through the receiver's own Store (real SQLite); the
store's clock is a variable here, and the engine is ticked with explicit times, so
an hour passes without sleeping and nothing depends on how busy the machine is."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from host_kit import plain_mosquitto
from test_uplink_store import pg_url  # noqa: F401 (a throwaway PostgreSQL cluster)

from hub import reading as rd
from hub.store import FILL_CLEAR_PCT, FILL_WARN_PCT, MDC_HUB_JOURNAL_FILL
from samband.receiver import alerts_db, alerts_rules
from samband.receiver import store as store_mod
from samband.receiver.alerts import Engine
from samband.receiver.alerts_causes import MDC_BATTERY, MDC_HUB_DEVICE_SILENT
from samband.receiver.alerts_channels import Dispatcher
from samband.receiver.alerts_rules import AlertRulesError
from samband.receiver.store import open_store
from samband.rig.broker import free_port

HUB = "00005a4d0001"
HUB2 = "00005a4d0002"
DEV = bytes.fromhex("00c05a4b000001")
ADDR = "C0:5A:4B:00:00:01"
GLUCOSE = 160212
T0 = 1_800_000_000.0

RULES = """
[thresholds]
clear_after_s = 60
hub_offline_s = 300
journal_capacity = 1000
refusals = 5
refusals_window_s = 600

[patients]
"00005a4d0001" = "child A"

[silence.devices]
"C0:5A:4B:00:00:01" = 900

[groups.nurse]
ack_timeout_s = 120
channels = [{type = "webhook", url = "http://127.0.0.1:9/nurse"}]

[groups.doctor]
ack_timeout_s = 300
channels = [{type = "webhook", url = "http://127.0.0.1:9/doctor"}]

[groups.emergency]
ack_timeout_s = 600
channels = [{type = "webhook", url = "http://127.0.0.1:9/emergency"}]

[[routes]]
kinds = ["clinical"]
groups = ["nurse", "doctor", "emergency"]
stop_on_clear = false

[[routes]]
kinds = ["*"]
groups = ["nurse", "doctor"]
"""


class Clock:
    """The store's `time` module while a test runs: received and last_seen times are ours."""

    def __init__(self, t):
        self.t = t

    def time(self):
        return self.t


class Recorder:
    """Stands in for the Dispatcher where a test is about who is told when, not how."""

    def __init__(self):
        self.sent = []

    def deliver(self, alert_id, group, msg):
        self.sent.append((alert_id, group.name, msg))

    def results(self):
        return []


@pytest.fixture
def clock(monkeypatch):
    c = Clock(T0)
    monkeypatch.setattr(store_mod, "time", c)
    return c


@pytest.fixture
def rig(tmp_path, clock):
    s = open_store(tmp_path / "r.db")
    rec = Recorder()
    eng = Engine(s, alerts_rules.parse(RULES), rec, now=clock.t)
    yield s, eng, rec, clock
    s.close()


_seq = {}


def put(s, mdc, val, prio=0, hub=HUB, dev=DEV, hts=True, unit="mg/dL"):
    q = _seq[hub] = _seq.get(hub, 0) + 1
    more = {"hts": 1_700_000_000_000 + q} if hts else {}
    s.store(hub, [(q, 1, rd.make(q, dev, mdc, val, [1, q], unit=unit, prio=prio, **more))])


def tick(eng, clock, dt=0.5):
    clock.t += dt
    eng.tick(clock.t)


def settle(eng, clock):
    """Tick once to see a cause gone, then clear_after_s (60 s) later: cleared by then if it stayed gone."""
    tick(eng, clock)
    tick(eng, clock, 60)


def groups(rec, aid):
    return [g for a, g, _ in rec.sent if a == aid]


def alerts(s, kind=None):
    return [a for a in reversed(alerts_db.list_alerts(s)) if kind is None or a["kind"] == kind]


def test_clinical_alarm_raised_once_and_cleared_with_hysteresis(rig):
    s, eng, rec, clock = rig
    for v in (40, 38, 41):  # three alarm readings of one episode: one alert
        put(s, GLUCOSE, v, prio=1)
        tick(eng, clock)
    [a] = alerts(s, "clinical")
    assert a["severity"] == "critical" and a["patient"] == "child A" and a["device"] == ADDR
    assert a["detail"]["value"] == 41 and a["last_seen"] > a["first_seen"] and a["cleared"] is None
    assert [g for _, g, _ in rec.sent] == ["nurse"]
    put(s, GLUCOSE, 90)  # back in range ...
    tick(eng, clock, 30)
    put(s, GLUCOSE, 45, prio=1)  # ... and below again within clear_after_s: the same alert
    tick(eng, clock)
    put(s, GLUCOSE, 95)
    tick(eng, clock)
    tick(eng, clock, 59)
    assert len(alerts(s)) == 1 and alerts(s)[0]["cleared"] is None
    tick(eng, clock, 1)  # gone for clear_after_s: cleared
    [a] = alerts(s)
    assert a["cleared"] == clock.t
    put(s, GLUCOSE, 39, prio=1)  # a new episode is a new alert
    tick(eng, clock)
    assert [x["cleared"] is None for x in alerts(s)] == [False, True]


def test_hub_offline_raised_once_cleared_and_no_flapping(rig):
    s, eng, rec, clock = rig
    s.status(HUB, 0)
    tick(eng, clock, 299)
    assert alerts(s) == []
    for _ in range(20):  # silent for 10 minutes: one alert
        tick(eng, clock, 30)
    [a] = alerts(s, "hub-offline")
    assert a["severity"] == "high" and a["hub"] == HUB
    for _ in range(10):  # a flickering link: back for a moment, gone again, over and over
        s.status(HUB, 0)
        tick(eng, clock, 1)
        tick(eng, clock, 301)
    assert len(alerts(s, "hub-offline")) == 1 and alerts(s)[0]["cleared"] is None
    for _ in range(5):  # really back: status every 30 s
        s.status(HUB, 0)
        tick(eng, clock, 30)
    [a] = alerts(s, "hub-offline")
    assert a["cleared"] is not None and len(rec.sent) == 2  # nurse, then doctor after 120 s unacknowledged


def test_device_silent_from_expected_interval_and_from_the_hub(rig):
    s, eng, rec, clock = rig
    put(s, GLUCOSE, 100)
    tick(eng, clock, 900)
    assert alerts(s, "device-silent") == []
    tick(eng, clock, 2)
    [a] = alerts(s, "device-silent")
    assert a["device"] == ADDR and a["detail"]["expected_s"] == 900
    tick(eng, clock, 600)
    assert len(alerts(s, "device-silent")) == 1
    put(s, GLUCOSE, 100)
    settle(eng, clock)
    assert alerts(s, "device-silent")[0]["cleared"] is not None
    # the hub's own report that a connected device went quiet (telemetry), on a device with no interval set
    other = bytes.fromhex("00112233445566")
    put(s, MDC_HUB_DEVICE_SILENT, 16, prio=2, dev=other, unit="s")
    tick(eng, clock)
    [a] = [x for x in alerts(s, "device-silent") if x["device"] == "11:22:33:44:55:66"]
    assert a["detail"]["quiet_s"] == 16
    put(s, 0x4BB8, 72, dev=other, unit="/min")  # it speaks again
    settle(eng, clock)
    assert all(x["cleared"] for x in alerts(s, "device-silent"))


def test_battery_low_with_hysteresis(rig):
    s, eng, rec, clock = rig
    for pct, active in ((30, 0), (19, 1), (22, 1), (18, 1), (24, 1)):  # between 20 and 25 it stays low
        put(s, MDC_BATTERY, pct, prio=2, unit="%")
        tick(eng, clock, 100)
        assert [a["cleared"] is None for a in alerts(s, "battery-low")] == [True] * active, pct
    put(s, MDC_BATTERY, 80, prio=2, unit="%")  # charged
    settle(eng, clock)
    [a] = alerts(s, "battery-low")
    assert a["cleared"] is not None and a["detail"]["text"] == "battery 24 %"  # the last low level


def test_journal_filling_with_hysteresis(rig):
    s, eng, rec, clock = rig
    for backlog, active in ((500, False), (700, True), (650, True), (610, True), (400, False)):
        s.status(HUB, backlog)
        settle(eng, clock)
        got = [a for a in alerts(s, "journal-filling") if a["cleared"] is None]
        assert bool(got) == active, backlog
    assert len(alerts(s, "journal-filling")) == 1


def test_journal_filling_from_the_hubs_own_telemetry(rig):
    """The hub's fill warning (hub/store.py: one reading at 70 %, one back under 60 %) raises
    and clears the alert by itself, without a configured capacity or a status backlog."""
    s, eng, rec, clock = rig
    hub_dev = bytes(7)  # the hub's own telemetry (app.HUB_DEV)
    put(s, MDC_HUB_JOURNAL_FILL, FILL_WARN_PCT + 1, prio=2, dev=hub_dev, unit="%")
    tick(eng, clock)
    [a] = alerts(s, "journal-filling")
    assert a["cleared"] is None and a["device"] is None and a["severity"] == "warning"
    assert a["detail"]["text"] == f"hub storage {FILL_WARN_PCT + 1} % full: offline for long?"
    assert [g for _, g, m in rec.sent if m["kind"] == "journal-filling"] == ["nurse"]
    tick(eng, clock, 120)
    assert len(alerts(s, "journal-filling")) == 1  # raised once
    put(s, MDC_HUB_JOURNAL_FILL, FILL_CLEAR_PCT - 5, prio=2, dev=hub_dev, unit="%")
    settle(eng, clock)
    [a] = alerts(s, "journal-filling")
    assert a["cleared"] is not None


def test_clock_not_set(rig):
    s, eng, rec, clock = rig
    put(s, GLUCOSE, 100, hts=False)
    put(s, GLUCOSE, 101, hts=False)
    tick(eng, clock)
    [a] = alerts(s, "clock-not-set")
    assert a["hub"] == HUB and a["device"] is None
    put(s, GLUCOSE, 102)  # the hub has its time now
    settle(eng, clock)
    assert alerts(s, "clock-not-set")[0]["cleared"] is not None


def test_repeated_refusals_but_not_replays(rig):
    s, eng, rec, clock = rig
    s.reject(HUB, {"replayed": 50})  # a hub re-sending after a lost ack: normal
    tick(eng, clock)
    s.reject(HUB, {"replayed": 50})
    tick(eng, clock)
    assert alerts(s) == []
    for _ in range(5):
        s.reject(HUB, {"forged": 1})
        tick(eng, clock, 10)
    [a] = alerts(s, "refusals")
    assert a["detail"]["count"] == 5 and a["severity"] == "high"
    tick(eng, clock, 600)  # the window passes without more
    tick(eng, clock, 61)
    assert alerts(s, "refusals")[0]["cleared"] is not None


def test_quarantined_records_raise_their_own_alert_not_refusals(rig):
    s, eng, rec, clock = rig
    s.status(HUB, 0)
    tick(eng, clock)
    s.store(HUB, [], {"out-of-range": 1}, quarantine=[(77, 1, "out-of-range", "mdc 2**64-1", b"\xa0")])
    tick(eng, clock)
    [a] = [x for x in alerts(s) if x["kind"] != "hub-offline"]
    assert a["kind"] == "quarantine" and a["detail"]["count"] == 1 and a["severity"] == "high"
    s.status(HUB, 0)
    tick(eng, clock, 600)  # the window passes without more
    s.status(HUB, 0)
    settle(eng, clock)
    assert alerts(s, "quarantine")[0]["cleared"] is not None and alerts(s, "refusals") == []


def test_refusals_before_start_are_history_not_an_alert(tmp_path, clock):
    s = open_store(tmp_path / "r.db")
    s.reject(HUB, {"forged": 40})
    eng = Engine(s, alerts_rules.parse(RULES), Recorder(), now=clock.t)
    tick(eng, clock)
    assert alerts(s) == []


def test_escalation_after_timeout_until_the_last_group(rig):
    s, eng, rec, clock = rig
    put(s, GLUCOSE, 40, prio=1)
    tick(eng, clock)
    aid = alerts(s)[0]["id"]
    assert groups(rec, aid) == ["nurse"]
    tick(eng, clock, 119)
    assert groups(rec, aid) == ["nurse"]
    put(s, GLUCOSE, 90)  # the value recovers, but a clinical alarm escalates until someone acknowledges it
    tick(eng, clock, 1)
    assert groups(rec, aid) == ["nurse", "doctor"]
    tick(eng, clock, 300)
    assert groups(rec, aid) == ["nurse", "doctor", "emergency"]
    tick(eng, clock, 3600)
    assert len(groups(rec, aid)) == 3  # no group after the last: the alert stays unacknowledged in the list
    msg = rec.sent[1][2]
    assert msg["group"] == "doctor" and msg["level"] == 1 and msg["ack"].startswith("samband alerts ack ")


def test_acknowledgement_stops_escalation(rig):
    s, eng, rec, clock = rig
    put(s, GLUCOSE, 40, prio=1)
    tick(eng, clock)
    aid = rec.sent[0][0]
    a = alerts_db.ack(s, aid, "nurse Kari", now=clock.t)
    assert a["acked_by"] == "nurse Kari" and a["next_at"] is None
    tick(eng, clock, 10_000)
    assert groups(rec, aid) == ["nurse"]
    with pytest.raises(alerts_db.AlertError, match="acknowledged already by nurse Kari"):
        alerts_db.ack(s, aid, "doctor")
    with pytest.raises(alerts_db.AlertError, match="no alert 999"):
        alerts_db.ack(s, 999, "doctor")


def test_an_ack_between_the_due_query_and_the_move_is_honoured(rig):
    """The move to the next group is conditional on acked_at in the same UPDATE: an
    acknowledgement from the dashboard that lands after this poll found the alert due
    and before it passed it on wins."""
    s, eng, rec, clock = rig
    put(s, GLUCOSE, 40, prio=1)
    tick(eng, clock)
    aid = alerts(s)[0]["id"]
    s.conn.execute("UPDATE alerts SET acked_by = 'Kari', acked_at = 1 WHERE id = ?", (aid,))  # next_at kept
    s.conn.commit()
    eng._escalate_to(aid, 1, clock.t + 200)
    assert groups(rec, aid) == ["nurse"] and alerts(s)[0]["grp"] == "nurse"


def test_technical_alert_that_clears_stops_escalating(rig):
    s, eng, rec, clock = rig
    s.status(HUB, 0)
    tick(eng, clock, 301)
    aid = alerts(s)[0]["id"]
    assert groups(rec, aid) == ["nurse"]
    s.status(HUB, 0)
    settle(eng, clock)  # back within the nurse's ack timeout, cleared before it runs out
    assert alerts(s)[0]["cleared"] is not None
    tick(eng, clock, 1000)
    assert groups(rec, aid) == ["nurse"]


def test_a_restarted_engine_does_not_raise_again(tmp_path, clock):
    s = open_store(tmp_path / "r.db")
    rules = alerts_rules.parse(RULES)
    eng = Engine(s, rules, Recorder(), now=clock.t)
    put(s, GLUCOSE, 40, prio=1)
    tick(eng, clock)
    rec2 = Recorder()
    eng2 = Engine(s, rules, rec2, now=clock.t)  # reads the last day's readings again
    tick(eng2, clock)
    assert len(alerts(s)) == 1 and rec2.sent == []
    tick(eng2, clock, 120)  # and carries on its escalation
    assert groups(rec2, alerts(s)[0]["id"]) == ["doctor"]


def test_a_bad_reading_row_is_counted_not_fatal(rig):
    s, eng, rec, clock = rig
    put(s, GLUCOSE, 40, prio=1)
    s.conn.execute("UPDATE readings SET reading = 'not json'")
    s.conn.commit()
    tick(eng, clock)
    assert eng.causes.bad == 1 and alerts(s) == []


def test_ack_and_list_from_the_cli(tmp_path, clock, capsys):
    from samband.cli import main
    db = tmp_path / "r.db"
    s = open_store(db)
    eng = Engine(s, alerts_rules.parse(RULES), Recorder(), now=clock.t)
    put(s, GLUCOSE, 40, prio=1)
    tick(eng, clock)
    aid = alerts(s)[0]["id"]
    assert main(["alerts", "--db", str(db), "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["kind"] == "clinical"
    assert main(["alerts", "ack", str(aid), "--by", "Kari", "--db", str(db)]) == 0
    assert "acknowledged by Kari" in capsys.readouterr().out
    assert main(["alerts", "ack", str(aid), "--by", "Ola", "--db", str(db)]) == 1
    assert "acknowledged already by Kari" in capsys.readouterr().err
    assert main(["alerts", "--db", str(db)]) == 1
    assert "needs --rules" in capsys.readouterr().err
    s.close()


BAD = [
    ("[groups.a]\nack_timeout_s = 1\nchannels = []\n[[routes]]\ngroups=['a']", "groups.a.channels: want at least"),
    ("[groups.a]\nchannels = [{type='webhook', url='http://x'}]\n[[routes]]\ngroups=['a']",
     "groups.a.ack_timeout_s: missing"),
    ("[groups.a]\nack_timeout_s = 1\nchannels = [{type='pager', to='x'}]\n[[routes]]\ngroups=['a']",
     "groups.a.channels[0].type: want one of mqtt, webhook, email"),
    ("[groups.a]\nack_timeout_s = 1\nchannels = [{type='webhook'}]\n[[routes]]\ngroups=['a']",
     "channels[0].url: a webhook channel needs url"),
    ("[groups.a]\nack_timeout_s = 1\nchannels = [{type='email', to=['x@y']}]\n[[routes]]\ngroups=['a']",
     "e-mail needs an [smtp] table"),
    ("[groups.a]\nack_timeout_s = 1\nchannels = [{type='webhook', url='http://x'}]\n[[routes]]\ngroups=['b']",
     "routes[0].groups: unknown 'b'"),
    ("[groups.a]\nack_timeout_s = 1\nchannels = [{type='webhook', url='http://x'}]\n[[routes]]\ngroups=['a']\n"
     "kinds=['clinicl']", "routes[0].kinds: unknown 'clinicl'"),
    ("[thresholds]\npoll_s = 2\n[groups.a]\nack_timeout_s = 1\nchannels = [{type='webhook', url='http://x'}]\n"
     "[[routes]]\ngroups=['a']", "thresholds.poll_s: at most 0.5"),
    ("[thresholds]\nbattery_low_pct = 30\nbattery_clear_pct=25\n", "battery_clear_pct: must be at least"),
    ("[thresholds]\nhub_ofline_s = 3\n", "thresholds.hub_ofline_s: unknown key"),
    ("[groups.a]\nack_timeout_s = 'x'\n", "groups.a.ack_timeout_s: want a number"),
    ("[groups\n", "not valid TOML"),
]


@pytest.mark.parametrize("text,why", BAD)
def test_rules_errors_are_one_line(text, why):
    with pytest.raises(AlertRulesError) as e:
        alerts_rules.parse(text, "r.toml")
    msg = str(e.value)
    assert why in msg and msg.startswith("r.toml: ") and "\n" not in msg


def test_rules_file_missing(tmp_path):
    with pytest.raises(AlertRulesError, match="cannot read the rules file"):
        alerts_rules.load(tmp_path / "none.toml")


def test_the_example_in_the_docs_parses():
    from pathlib import Path
    doc = (Path(__file__).resolve().parent.parent / "docs" / "alerts.md").read_text()
    text = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    r = alerts_rules.parse(text, "docs/alerts.md")
    assert r.route("clinical", "critical").groups == ("nurse", "doctor", "emergency")


# ------------------------------------------------------------------ the channels, really delivering

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv = self.server
        srv.got.append((self.path, json.loads(body)))
        code = srv.codes.pop(0) if srv.codes else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def webhook():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    srv.got, srv.codes = [], []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def smtpd():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Box(Message):
        def __init__(self):
            super().__init__()
            self.got = []
            self.arrived = threading.Event()

        def handle_message(self, m):
            self.got.append(m)
            self.arrived.set()

    box = Box()
    c = Controller(box, hostname="127.0.0.1", port=free_port())
    c.start()
    yield c, box
    c.stop()


def subscriber(port, topic):
    import paho.mqtt.client as mqtt
    got, ready = [], threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe(topic, qos=1)
    c.on_subscribe = lambda *a: ready.set()
    c.on_message = lambda cl, u, m: got.append(json.loads(m.payload))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10)
    return c, got


def wait_for(cond, what, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout} s")


def channel_rules(webhook_url, mqtt_port, smtp_port, retries=3):
    return alerts_rules.parse(f"""
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "alerts@samband.test"
[groups.all]
ack_timeout_s = 60
channels = [{{type = "mqtt", topic = "centre/alerts"}},
            {{type = "webhook", url = "{webhook_url}", timeout_s = 2, retries = {retries}}},
            {{type = "email", to = ["nurse@home.test", "oncall@home.test"]}}]
[[routes]]
groups = ["all"]
""")


def test_all_three_channels_deliver_and_each_attempt_is_recorded(tmp_path, webhook, smtpd):
    controller, box = smtpd
    proc, port = plain_mosquitto(tmp_path)
    sub, got = subscriber(port, "centre/alerts")
    s = open_store(tmp_path / "r.db")
    rules = channel_rules(f"http://127.0.0.1:{webhook.server_port}/hook", port, controller.port)
    d = Dispatcher(rules, pause_s=0.01)
    eng = Engine(s, rules, d)
    webhook.codes = [503, 500]  # the webhook's server fails twice, then takes it
    try:
        put(s, GLUCOSE, 40, prio=1, hub=HUB2)
        eng.tick()
        wait_for(lambda: got and len(webhook.got) == 3 and box.got, "delivery on every channel")
        d.close()
        eng.record_deliveries()
    finally:
        sub.loop_stop()
        proc.terminate()
        proc.wait()
    aid = alerts(s)[0]["id"]
    assert got[0]["id"] == aid and got[0]["kind"] == "clinical" and got[0]["hub"] == HUB2
    assert webhook.got[2] == ("/hook", got[0])
    m = box.got[0]
    assert m["To"] == "nurse@home.test,oncall@home.test" and f"(alert {aid})" in m["Subject"]
    assert "CRITICAL" in m["Subject"] and f"samband alerts ack {aid}" in m.get_payload()
    rows = alerts_db.deliveries(s, aid)
    hook = [(r["attempt"], r["ok"], r["error"]) for r in rows if r["channel"] == "webhook"]
    assert hook == [(1, 0, "HTTP 503 Service Unavailable"), (2, 0, "HTTP 500 Internal Server Error"), (3, 1, None)]
    assert {(r["channel"], r["ok"]) for r in rows if r["channel"] != "webhook"} == {("mqtt", 1), ("email", 1)}
    s.close()


def test_an_unreachable_webhook_is_recorded_as_failed_attempts(tmp_path, smtpd):
    controller, box = smtpd
    proc, port = plain_mosquitto(tmp_path)
    s = open_store(tmp_path / "r.db")
    rules = channel_rules(f"http://127.0.0.1:{free_port()}/nobody", port, controller.port, retries=2)
    d = Dispatcher(rules, pause_s=0.01)
    eng = Engine(s, rules, d)
    try:
        put(s, GLUCOSE, 40, prio=1)
        eng.tick()
        d.close()
        eng.record_deliveries()
    finally:
        proc.terminate()
        proc.wait()
    hook = [r for r in alerts_db.deliveries(s) if r["channel"] == "webhook"]
    assert [(r["attempt"], r["ok"]) for r in hook] == [(1, 0), (2, 0), (3, 0)]
    assert "refused" in hook[0]["error"].lower()
    assert eng.counters["delivery-failed"] == 3 and box.got  # the other channels still delivered
    s.close()


def test_postgresql_reads_each_reading_once_and_escalates(pg_url, clock):  # noqa: F811
    """PostgreSQL has no commit-ordered rowid: the poll reads the last seconds again and
    must skip what it has seen, or an alarm episode would count its readings twice and a
    cleared alarm could come back from a row read again."""
    s = open_store(pg_url)
    rec = Recorder()
    eng = Engine(s, alerts_rules.parse(RULES), rec, now=clock.t)
    put(s, GLUCOSE, 40, prio=1)
    for _ in range(4):  # four polls within the lookback: the alarm row is read four times
        tick(eng, clock)
    put(s, GLUCOSE, 90)
    for _ in range(4):
        tick(eng, clock)
    assert eng.counters["readings"] == 2
    settle(eng, clock)
    [a] = alerts(s, "clinical")
    assert a["cleared"] is not None and groups(rec, a["id"]) == ["nurse"]
    tick(eng, clock, 120)
    assert groups(rec, a["id"]) == ["nurse", "doctor"]  # a clinical alarm escalates until acknowledged
    alerts_db.ack(s, a["id"], "Kari")
    tick(eng, clock, 1000)
    assert groups(rec, a["id"]) == ["nurse", "doctor"]
    s.close()
