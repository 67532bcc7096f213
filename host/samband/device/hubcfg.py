"""Signed configs to hubs over their own broker: per-patient limits and receiver-key rotation.

Why over the broker: a hub in a patient's home is reached by no technician, so
limits changed by a clinician and a new receiver key (a suspected leak, a
yearly rotation) must reach it the way updates do (docs/ota.md): as the
receiver's login, retained on samband/<hub>/cfg/limits and
samband/<hub>/cfg/keys (QoS 1), so an offline hub takes it when it next
connects. The hub (firmware/hub/hubcfg.py) verifies each one (authentic for
this hub under the depot's authority key, serial above the one in force),
stores it atomically, applies it without a reboot and reports the serials in
force in its status ("cfg": {"k": keys, "l": limits, "bad": refusals, "r":
last refusal, "x": its serial}); `Push` waits for that report.

Rotating the receiver key: the receivers must hold the new secret before any
hub seals to it (a record sealed to a key no receiver holds waits on the hub,
refused as wrong-key, until one does): `new_receiver_key` makes it in the
depot, restart the receivers (`samband receive` reads the depot's keys at
start), then push. The config names the depot's newest receiver keys, newest
first (at most 4): the hub seals new records to the first; records already
sealed travel as they are, so the older keys stay in the depot until every
hub's backlog from before the rotation has arrived."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cbor2

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.device.depot import Depot

KINDS = ("limits", "keys")


def topic(hub_hex: str, kind: str) -> str:
    """The retained topic of one kind of config for a hub (hub.uplink.cfg_topic + kind)."""
    from hub.uplink import cfg_topic
    return cfg_topic(hub_hex) + kind


def receivers_config(depot: Depot, hub_id: bytes, now: float | None = None) -> tuple[int, bytes]:
    """(serial, config bytes) telling hub_id to seal to the depot's newest receiver key (the
    config names up to 4, newest first), recorded in the depot. Refused for a hub the depot did
    not provision or without its authority key (a new one would not be the hub's)."""
    hub_hex = bytes(hub_id).hex()
    hub = depot.hubs().get(hub_hex)
    if hub is None:
        raise SambandError(f"hub {hub_hex} is not in the depot {depot.path}: configs are made with the depot "
                           f"that provisioned it")
    authority = depot.authority(create=False)
    done = depot.load_json("receiver-configs.json")
    # above every serial issued here and above provisioning's (1): a clock's seconds, so a depot
    # restored from an older backup still issues a config the hub takes
    serial = max(done.get(hub_hex, {}).get("serial", 0) + 1, int(now if now is not None else time.time()))
    receivers = depot.receiver_publics()[:4]
    blob = authority.config(bytes(hub_id), bytes.fromhex(hub["public"]), serial, receivers)
    done[hub_hex] = {"serial": serial, "at": int(time.time()), "keys": [kid for kid, _ in receivers]}
    depot.save_json("receiver-configs.json", done)
    return serial, blob


def kind_of(blob: bytes) -> str:
    """"keys" or "limits" by the config's version byte (hub.seal.V_CONFIG, hub.limits.V_LIMITS)."""
    from hub import limits, seal
    if blob[:1] == bytes((seal.V_CONFIG,)):
        return "keys"
    if blob[:1] == bytes((limits.V_LIMITS,)):
        return "limits"
    raise SambandError("not a receiver-key or limits config")


class Push:
    """Publish one config (retained) to a hub and watch its status until it reports the
    serial in force (`wait`) or a refusal after the push (`refused`)."""

    def __init__(self, hub_hex: str, blob: bytes, serial: int | None, host: str, port: int,
                 ca: str | Path | None = None, user: str = "receiver", password: str | None = None) -> None:
        from samband.device.ota import Fleet
        self.hub = hub_hex.lower()
        self.blob = bytes(blob)
        self.kind = kind_of(self.blob)
        self.serial = serial
        self.cfg = None  # the hub's last "cfg" status entry
        self.changed = threading.Event()
        self.fleet = Fleet([self.hub], host, port, ca, user, password)
        self.fleet.c.on_message = self._message

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 3 or parts[1] != self.hub or parts[2] != "status":
            return
        try:
            cfg = cbor2.loads(msg.payload).get("cfg")
        except Exception:  # noqa: BLE001 - a status is a hint; a bad one is skipped
            return
        if isinstance(cfg, dict):
            self.cfg = cfg
            self.changed.set()

    def start(self, timeout: float = 10) -> Push:
        self.fleet.start(timeout)
        info = self.fleet.c.publish(topic(self.hub, self.kind), self.blob, qos=1, retain=True)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise SambandError(f"the broker did not take the config for {self.hub} within {timeout} s")
        return self

    def in_force(self) -> bool:
        c = self.cfg or {}
        return c.get("k" if self.kind == "keys" else "l") == self.serial

    def refused(self) -> str | None:
        """The hub's refusal code if its last refusal was of this config (its serial), else None."""
        c = self.cfg or {}
        if self.serial is not None and c.get("x") == self.serial and not self.in_force():
            return c.get("r") or "?"
        return None

    def wait(self, timeout: float) -> bool:
        """True once the hub reports the serial in force; False on a refusal or the timeout."""
        end = time.monotonic() + timeout
        while not self.in_force() and self.refused() is None:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.changed.wait(min(left, 0.5))
            self.changed.clear()
        return self.in_force()

    def close(self) -> None:
        self.fleet.close()
