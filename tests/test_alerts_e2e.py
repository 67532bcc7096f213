"""End to end: a virtual hub's alarm reading reaches a responder, escalates, and stops when acknowledged.

The whole real path: the firmware on the MicroPython unix port seals the
reading into its journal and sends it over TLS to Mosquitto; the receiver
(the one `samband receive` runs) opens it and commits it to SQLite; the
`samband alerts` process, a separate OS process reading that database,
raises the alert and publishes it to the first group's MQTT topic on an
emergency centre's own broker; unacknowledged, it goes by e-mail (aiosmtpd)
to the second group; `samband alerts ack` stops it before the third group's
webhook is ever called."""

import subprocess
import sys

from conftest import TESTS, firmware_tree
from host_kit import plain_mosquitto
from test_alerts import smtpd, subscriber, wait_for, webhook  # noqa: F401 (fixtures)

from samband.receiver import alerts_db
from samband.receiver.store import open_store
from samband.rig.uplink import UplinkRig

TESTS_DATA = TESTS / "data"
HUB = "00005a4d00e1"


def test_alarm_from_the_virtual_hub_reaches_mqtt_escalates_by_email_and_stops_on_ack(tmp_path, webhook, smtpd):  # noqa: F811
    controller, box = smtpd
    centre, centre_port = plain_mosquitto(tmp_path)
    sub, got = subscriber(centre_port, "centre/alerts")
    rules = tmp_path / "alerts.toml"
    rules.write_text(f"""
[thresholds]
clear_after_s = 600
[patients]
"{HUB}" = "child A"
[mqtt]
host = "127.0.0.1"
port = {centre_port}
[smtp]
host = "127.0.0.1"
port = {controller.port}
sender = "alerts@samband.test"
[groups.nurse]
ack_timeout_s = 1
channels = [{{type = "mqtt", topic = "centre/alerts"}}]
[groups.doctor]
ack_timeout_s = 3600
channels = [{{type = "email", to = ["oncall@samband.test"]}}]
[groups.emergency]
ack_timeout_s = 60
channels = [{{type = "webhook", url = "http://127.0.0.1:{webhook.server_port}/amk"}}]
[[routes]]
kinds = ["clinical"]
groups = ["nurse", "doctor", "emergency"]
stop_on_clear = false
""")
    rig = UplinkRig(tmp_path / "rig", firmware=firmware_tree())
    proc = None
    try:
        rig.add_hub(HUB, TESTS_DATA / "uplink_main.py", {"total": 6, "alarm_every": 3, "interval_ms": 200})
        rig.start()
        proc = subprocess.Popen([sys.executable, "-m", "samband.cli", "alerts", "--db", rig.db, "--rules",
                                 str(rules)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: got, "alert on the emergency centre's MQTT topic", 120)
        msg = got[0]
        assert msg["kind"] == "clinical" and msg["hub"] == HUB and msg["patient"] == "child A"
        assert msg["group"] == "nurse" and msg["severity"] == "critical"
        assert msg["text"].endswith("mg/dL") and msg["device"] == "11:22:33:44:55:66"
        stored = [r for r in rig.store.readings(hub=HUB) if r.get("prio") == 1]
        # an alarm reading the receiver stored: the first, or (when one poll of the alert engine
        # found both alarms of the code already stored) the newest, which the alert then names
        assert msg["detail"]["seq"] in [r["seq"] for r in stored]

        wait_for(lambda: box.got, "the e-mail to the on-call doctor after the nurse's timeout", 60)
        m = box.got[0]
        assert m["To"] == "oncall@samband.test" and f"(alert {msg['id']})" in m["Subject"]
        ack = subprocess.run([sys.executable, "-m", "samband.cli", "alerts", "ack", str(msg["id"]), "--by",
                              "Dr Ola", "--db", rig.db], capture_output=True, text=True, timeout=60)
        assert ack.returncode == 0, ack.stderr
        assert "acknowledged by Dr Ola" in ack.stdout
        wait_for(lambda: rig.store.count(HUB) == 6, "every reading stored", 120)
    finally:
        if proc is not None:
            proc.terminate()
            out = proc.communicate(timeout=30)[0]
        rig.stop()
        sub.loop_stop()
        centre.terminate()
        centre.wait()
    assert proc.returncode == 0, out
    s = open_store(rig.db)
    [a] = alerts_db.list_alerts(s)  # both alarm readings are one episode: one alert
    assert a["acked_by"] == "Dr Ola" and a["next_at"] is None and a["grp"] == "doctor"
    # seen when the alarm readings were received: first when the first was, unless one engine poll
    # met both (one batch); last_seen moves on to the second's when it brings news (alerts.py:
    # a new text, or a second or more later)
    first, last = [r["received"] for r in s.readings(hub=HUB) if r.get("prio") == 1]
    assert a["first_seen"] in (first, last) and a["last_seen"] in (first, last)
    assert a["first_seen"] <= a["last_seen"]
    sent = [(d["group"], d["channel"], d["ok"]) for d in alerts_db.deliveries(s, a["id"])]
    assert sent == [("nurse", "mqtt", 1), ("doctor", "email", 1)]
    assert webhook.got == [] and len(got) == 1
    s.close()
