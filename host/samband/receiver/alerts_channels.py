"""Delivering an alert: an MQTT topic, an HTTP webhook, e-mail; every attempt recorded.

Deliveries run on worker threads so that a webhook that hangs until its
timeout never delays the poll that would raise the next alarm. Each
attempt (ok or with its error) is handed back as a record through
`Dispatcher.results()`; the engine writes them to `alert_deliveries` on
its own connection, so that this module never touches the database.
A channel retries up to `retries` times with a doubling pause (0.2 s,
0.4 s, ...): delivery to a responder is the point, and a receiving system
restarting is normal.
"""

from __future__ import annotations

import json
import queue
import smtplib
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.receiver.alerts_rules import Channel, Group, Rules


class DeliveryError(SambandError):
    pass


def subject(msg: dict[str, Any]) -> str:
    who = msg.get("patient") or f"hub {msg.get('hub')}"
    return f"[samband {msg['severity'].upper()}] {msg['kind']}: {who} - {msg['text']} (alert {msg['id']})"


class MqttSender:
    """One persistent paho connection to the emergency centre's broker, QoS 1."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.lock = threading.Lock()
        self.c = None

    def _client(self, timeout: float) -> Any:
        import paho.mqtt.client as mqtt
        if self.c is not None and self.c.is_connected():
            return self.c
        if self.c is None:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.cfg.get("client_id", ""),
                            protocol=mqtt.MQTTv311, clean_session=True)
            if self.cfg.get("user"):
                c.username_pw_set(self.cfg["user"], self.cfg.get("password"))
            if self.cfg.get("ca"):
                c.tls_set(ca_certs=str(self.cfg["ca"]))
            c.reconnect_delay_set(0.2, 5)
            self.connected = threading.Event()
            c.on_connect = lambda cl, u, f, rc, p=None: rc == 0 and self.connected.set()
            c.on_disconnect = lambda *a: self.connected.clear()
            c.connect_async(self.cfg["host"], int(self.cfg.get("port", 1883)), keepalive=10)
            c.loop_start()
            self.c = c
        if not self.connected.wait(timeout):
            raise DeliveryError(f"no connection to the MQTT broker {self.cfg['host']}:{self.cfg.get('port', 1883)}")
        return self.c

    def send(self, topic: str, msg: dict[str, Any], timeout: float) -> None:
        with self.lock:
            c = self._client(timeout)
            info = c.publish(topic, json.dumps(msg, sort_keys=True), qos=1)
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise DeliveryError(f"the broker did not confirm within {timeout} s (rc {info.rc})")

    def close(self) -> None:
        if self.c is not None:
            self.c.disconnect()
            self.c.loop_stop()
            self.c = None


def send_webhook(url: str, msg: dict[str, Any], timeout: float) -> None:
    body = json.dumps(msg, sort_keys=True).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "samband-alerts"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
    except urllib.error.HTTPError as e:
        raise DeliveryError(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DeliveryError(str(getattr(e, "reason", e))) from None


def send_email(smtp: dict[str, Any], to: str, msg: dict[str, Any], timeout: float) -> None:
    m = EmailMessage()
    m["From"] = smtp["sender"]
    m["To"] = to
    m["Subject"] = subject(msg)
    m.set_content(msg["text"] + "\n\n" + json.dumps(msg, indent=1, sort_keys=True) + "\n\nAcknowledge: "
                  + msg["ack"] + "\n")
    try:
        with smtplib.SMTP(smtp["host"], int(smtp.get("port", 25)), timeout=timeout) as s:
            if smtp.get("starttls"):
                s.starttls()
            if smtp.get("user"):
                s.login(smtp["user"], smtp.get("password", ""))
            s.send_message(m)
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(f"SMTP: {e}") from None


class Dispatcher:
    """Channel deliveries on a few threads; attempt records come back through results()."""

    def __init__(self, rules: Rules, workers: int = 4, pause_s: float = 0.2) -> None:
        self.rules = rules
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alert-delivery")
        self.out = queue.Queue()
        self.pause_s = pause_s
        self.mqtt = MqttSender(rules.mqtt) if rules.mqtt else None

    def deliver(self, alert_id: int, group: Group, msg: dict[str, Any]) -> None:
        """Queue msg for every channel of the group; returns at once."""
        for ch in group.channels:
            self.pool.submit(self._one, alert_id, group.name, ch, msg)

    def _send(self, ch: Channel, msg: dict[str, Any]) -> None:
        if ch.type == "mqtt":
            self.mqtt.send(ch.target, msg, ch.timeout_s)
        elif ch.type == "webhook":
            send_webhook(ch.target, msg, ch.timeout_s)
        else:
            send_email(self.rules.smtp, ch.target, msg, ch.timeout_s)

    def _one(self, alert_id: int, group: str, ch: Channel, msg: dict[str, Any]) -> None:
        for attempt in range(1, ch.retries + 2):
            try:
                self._send(ch, msg)
                self.out.put((alert_id, time.time(), group, ch.type, ch.target, attempt, 1, None))
                return
            except Exception as e:  # recorded, then tried again: a delivery thread must never die silently
                self.out.put((alert_id, time.time(), group, ch.type, ch.target, attempt, 0,
                              str(e) or type(e).__name__))
            if attempt <= ch.retries:
                time.sleep(self.pause_s * 2 ** (attempt - 1))

    def results(self) -> list[tuple[Any, ...]]:
        got = []
        while True:
            try:
                got.append(self.out.get_nowait())
            except queue.Empty:
                return got

    def close(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait)
        if self.mqtt:
            self.mqtt.close()
