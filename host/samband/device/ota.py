"""`samband ota`: serve a signed tree release to chosen hubs over their own broker.

The hub pulls (docs/ota.md, firmware/hub/ota.py): it finds the release's header
retained on samband/<hub>/ota, checks it, and asks for the chunks it lacks in its
status message (samband/<hub>/status, `"ota": {"w": [...]}`), only while it has no
alarm to send; this side answers each request with those chunks on the same ota
topic. So a hub that lost power, changed bearer or ran out of its cellular budget
simply asks again later, and nothing here keeps state a restart would lose: a
rollout is the retained offer. The login is the receiver's (its ACL may write
every hub's ota topic and read every status); the status subscription is not
shared, so receivers still get every status too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cbor2

from hub import release as fmt
from samband.errors import SambandError

log = logging.getLogger(__name__)
DEFAULT_CHUNK = 2048
MAX_CHUNK = 4096  # hub.ota.MAX_CHUNK


def chunks_of(data: bytes, size: int) -> tuple[bytes, list[bytes]]:
    """(header bytes, [image chunks]) of a release; SambandError if it is not one."""
    try:
        _, _, start = fmt.split_header(data)
    except fmt.ReleaseError as e:
        raise SambandError(f"not a release: {e}") from None
    img = data[start:]
    return data[:start], [img[i:i + size] for i in range(0, len(img), size)]


# a hub's refusal codes (hub/ota.py REFUSALS) in words, for the operator
REFUSED = {"signature": "not signed by this depot's release key", "board": "built for another board",
           "kind": "a kind of release this hub cannot take (a firmware release needs ESP32 OTA partitions)",
           "downgrade": "older than what it runs", "too-old": "it runs a version older than the release's minimum",
           "hash": "the image does not match its signed hash", "failed": "this release was rolled back before",
           "room": "paused: the flash it needs is the journal's (goes on when room is freed)"}


def progress_text(hub: str, st: dict[str, Any]) -> str:
    """One line for a hub's progress, from the "ota" entry of its status."""
    s = st.get("st", "?")
    line = f"{hub}  runs {st.get('v', '?')}"
    if st.get("fv"):
        line += f" on firmware {st['fv']}"
    line += f"  {s}"
    if "n" in st:
        line += f"  {st.get('have', 0)}/{st['n']} chunks of {st.get('to', '?')}"
    if st.get("r"):
        words = REFUSED.get(st["r"])
        line += f"  (refused: {st['r']}{': ' + words if words else ''})"
    return line


def _client(host: str, port: int, ca: str | Path | None, user: str, password: str | None, client_id: str = "") -> Any:
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                    clean_session=True)
    if user:
        c.username_pw_set(user, password)
    if ca:
        c.tls_set(ca_certs=str(ca))
    return c


def _connect(c: Any, host: str, port: int) -> None:
    try:
        c.connect(host, port, keepalive=30)
    except OSError as e:
        raise SambandError(f"cannot reach the MQTT broker at {host}:{port}: {e.strerror or e}") from None
    c.loop_start()


def stop(hubs: Iterable[str], host: str, port: int, ca: str | Path | None = None, user: str = "receiver",
         password: str | None = None, timeout: float = 10) -> None:
    """End a rollout: a retained stop on each hub's ota topic replaces the offer, so hubs
    drop what they fetched now or when they next connect (a switch already made still
    ends in its confirmation or roll-back)."""
    c = _client(host, port, ca, user, password)
    _connect(c, host, port)
    try:
        for h in hubs:
            info = c.publish(f"samband/{h.lower()}/ota", cbor2.dumps({"x": 1}), qos=1, retain=True)
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise SambandError(f"the broker at {host}:{port} did not take the stop for {h} within {timeout} s")
    finally:
        c.loop_stop()
        c.disconnect()


class Fleet:
    """Watches the hubs' status messages for their "ota" entry (which version each runs,
    where an update stands): hubs=None watches every hub. start(), progress, close()."""

    def __init__(self, hubs: Iterable[str] | None, host: str, port: int, ca: str | Path | None = None,
                 user: str = "receiver", password: str | None = None,
                 on_progress: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.hubs = None if hubs is None else [h.lower() for h in hubs]
        self.progress = {}   # hub -> its last "ota" status entry
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self.c = _client(host, port, ca, user, password, f"samband-ota-{id(self):x}")
        self.c.on_connect = self._connected
        self.c.on_message = self._message
        self.host, self.port = host, port
        self.connected = threading.Event()

    def start(self, timeout: float = 10) -> Fleet:
        _connect(self.c, self.host, self.port)
        if not self.connected.wait(timeout):
            self.c.loop_stop()
            raise SambandError(f"the broker at {self.host}:{self.port} did not accept the login within {timeout} s")
        return self

    def _connected(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc == 0:
            client.subscribe("samband/+/status", qos=0)
            self.connected.set()
        else:
            log.warning("broker refused samband ota: %s", rc)

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 3 or parts[2] != "status" or (self.hubs is not None and parts[1] not in self.hubs):
            return
        try:
            st = cbor2.loads(msg.payload).get("ota")
        except Exception:  # noqa: BLE001 - a hub's status is a hint; a bad one is skipped
            return
        if not isinstance(st, dict):
            return
        hub = parts[1]
        with self._lock:
            last = self.progress.get(hub, {})
            changed = any(last.get(k) != st.get(k) for k in ("st", "have", "v", "fv", "r"))
            self.progress[hub] = st
        self.status(hub, st)
        if changed and self.on_progress:
            self.on_progress(hub, st)

    def status(self, hub: str, st: dict[str, Any]) -> None:
        """A hub's "ota" status entry arrived (Rollout answers its chunk requests here)."""

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


class Rollout(Fleet):
    """One release offered to chosen hubs; start(), then done()/progress, clear(), close()."""

    def __init__(self, data: bytes, hubs: Iterable[str], host: str, port: int, ca: str | Path | None = None,
                 user: str = "receiver", password: str | None = None, chunk: int = DEFAULT_CHUNK,
                 on_progress: Callable[[str, dict[str, Any]], None] | None = None,
                 gate: Callable[[str, int], bool] | None = None, url: str | None = None) -> None:
        if not 0 < chunk <= MAX_CHUNK:
            raise SambandError(f"--chunk {chunk}: a hub takes 1..{MAX_CHUNK} bytes a chunk")
        if url is not None:
            from hub import otahttp
            try:
                otahttp.parse_url(url)  # what the hubs accept
            except ValueError as e:
                raise SambandError(f"--url {url}: {e}") from None
        self.url = url  # the hubs fetch the image from there (hub/otahttp.py), served with Range
        self.head, self.parts = chunks_of(data, chunk)
        m = fmt.parse_manifest(fmt.split_header(data)[0])
        if m["kind"] not in ("tree", "firmware"):
            raise SambandError(f"{m['kind']} releases cannot go over the air yet: `samband release --kind tree` "
                               f"(or --kind firmware for ESP32 boards)")
        super().__init__(hubs, host, port, ca, user, password, on_progress)
        self.version = m["v"]
        self.kind = m["kind"]
        self.chunk = chunk
        self.sent = {h: 0 for h in self.hubs}  # chunk bytes published per hub
        self.gate = gate  # gate(hub, i): False holds chunk i back (the hub asks again); tests pace with it

    def offer_payload(self) -> bytes:
        offer: dict[str, Any] = {"o": self.head, "cs": self.chunk}
        if self.url is not None:
            offer["u"] = self.url
        return cbor2.dumps(offer)

    def start(self, timeout: float = 10) -> Rollout:
        super().start(timeout)
        for h in self.hubs:
            self.c.publish(f"samband/{h}/ota", self.offer_payload(), qos=1, retain=True).wait_for_publish(timeout)
        return self

    def status(self, hub: str, st: dict[str, Any]) -> None:
        want = st.get("w")
        if st.get("to") == self.version and isinstance(want, list):
            for i in want:
                if isinstance(i, int) and 0 <= i < len(self.parts) and (self.gate is None or self.gate(hub, i)):
                    self.c.publish(f"samband/{hub}/ota", cbor2.dumps({"c": i, "d": self.parts[i]}), qos=0)
                    self.sent[hub] += len(self.parts[i])

    def runs_it(self, hub: str) -> bool:
        """True once the hub reports the release's version as its own, confirmed."""
        st = self.progress.get(hub, {})
        runs = st.get("fv") if self.kind == "firmware" else st.get("v")  # a firmware image has its own version
        return runs == self.version and st.get("st") in ("done", "none")

    def done(self) -> bool:
        return all(self.runs_it(h) for h in self.hubs)

    def wait(self, timeout: float, poll: float = 0.2) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.done():
                return True
            time.sleep(poll)
        return self.done()

    def clear(self, hubs: Iterable[str] | None = None) -> None:
        """Withdraw the retained offer (the hubs run it, or the rollout ends)."""
        for h in hubs or self.hubs:
            self.c.publish(f"samband/{h}/ota", b"", qos=1, retain=True).wait_for_publish(10)
