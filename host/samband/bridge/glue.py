"""What the BLE bridge (samband.bridge.server) puts between bumble and the hub's
wire: the conversions (addresses, UUIDs, bond keys, ATT errors, frames) and the
two bumble subclasses through which the hub owns the central's bonds and sees
every notification (HubKeyStore, HubGattClient).

Kept apart from the server because none of it holds the bridge's state: each is
a plain function of its arguments, or a class that calls back into the bridge
through its public methods (keystore_request, gatt_event, stats). bumble is
imported inside the functions, so that importing the bridge costs nothing until
it starts. The frame codes and size are the hub's (firmware/hub/ble/bridge.py).
"""

from __future__ import annotations

import json
import logging
import struct
from typing import TYPE_CHECKING, Any

import cbor2

from hub.ble.bridge import MAX_FRAME
from samband.errors import SambandError

if TYPE_CHECKING:
    from bumble import hci
    from bumble.device import Connection
    from bumble.keys import PairingKeys

    from samband.bridge.server import BleBridge

log = logging.getLogger("samband.bridge.server")


class BridgeError(SambandError):
    """A request that failed; the text goes back to the hub in an error frame, and
    reason (a hub.ble reason word such as KEY_MISSING, or None) with it, so that the
    hub decides by the word and never by the text."""

    def __init__(self, msg: str, reason: str | None = None) -> None:
        super().__init__(msg)
        self.reason = reason


# ----------------------------------------------------------------- conversions

def addr_from7(a: bytes) -> hci.Address:
    """The protocol's 7-byte address (type, then MSB first) -> bumble's; the bridge's requests and the key store."""
    from bumble import hci
    if not isinstance(a, bytes) or len(a) != 7 or a[0] > 1:
        raise BridgeError("bad address %r (7 bytes: type 0/1, then 6 bytes MSB first)" % (a,))
    t = hci.Address.PUBLIC_DEVICE_ADDRESS if a[0] == 0 else hci.Address.RANDOM_DEVICE_ADDRESS
    return hci.Address(bytes(reversed(a[1:])), t)


def addr7(address: hci.Address) -> bytes:
    """bumble's address -> the protocol's 7 bytes; the bridge's events and replies."""
    return bytes([0 if address.is_public else 1]) + bytes(reversed(bytes(address)))


def name_to7(name: str) -> bytes:
    """An address as bumble's key store names it (text) -> the protocol's 7 bytes."""
    from samband.bridge.sim.common import parse_addr
    return addr7(parse_addr(name))


def uuid_out(u: Any) -> int | bytes:
    """bumble UUID -> protocol UUID: int for 16/32-bit and SIG-based 128-bit, else 16 bytes BE."""
    from hub import profiles
    k = profiles.norm(bytes(u.uuid_bytes))
    if isinstance(k, int):
        return k
    return bytes.fromhex(k.replace("-", ""))


def keys_to_bytes(keys: PairingKeys) -> bytes:
    """bumble PairingKeys -> the opaque bytes the hub stores (JSON of to_dict)."""
    return json.dumps(keys.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def keys_from_bytes(b: bytes) -> PairingKeys:
    from bumble.keys import PairingKeys
    return PairingKeys.from_dict(json.loads(bytes(b).decode()))


def att_text(e: Exception) -> str:
    """An ATT error in words for the hub's error frame (the bridge's requests)."""
    from bumble import att
    code = getattr(e, "error_code", None)
    if code is None:
        return "att error: %s" % e
    try:
        name = att.ErrorCode(code).name.lower().replace("_", " ")
    except ValueError:
        name = "application error"
    h = getattr(e, "att_handle", None)
    msg = getattr(e, "message", None)
    if not h and msg is not None:
        h = getattr(msg, "attribute_handle_in_error", None)
    return "att error 0x%02x %s at handle 0x%04x" % (code, name, h or 0)


def frame(msg: list[Any]) -> bytes:
    """One frame to the hub: 2-byte big-endian length, deterministic CBOR (the bridge's every send)."""
    body = cbor2.dumps(msg, canonical=True)
    if len(body) > MAX_FRAME:
        raise BridgeError("frame of %d bytes is too long" % len(body))
    return struct.pack(">H", len(body)) + body


# ----------------------------------------------------------------- bumble glue

def keystore_class() -> type:
    """The key-store class for the bridge's central (made on first use: bumble is imported only then)."""
    from bumble.keys import KeyStore

    class HubKeyStore(KeyStore):
        """bumble's key store for the hub's central: every call goes to the connected hub."""

        def __init__(self, bridge: BleBridge) -> None:
            self.bridge = bridge

        async def get(self, name: str) -> PairingKeys | None:
            raw = await self.bridge.keystore_request("get", name_to7(name))
            if not raw:
                return None
            try:
                return keys_from_bytes(raw)
            except (ValueError, TypeError, KeyError):
                log.warning("hub sent unreadable bond keys for %s", name)
                return None

        async def update(self, name: str, keys: PairingKeys) -> None:
            old = await self.get(name)
            if old is not None:  # bumble merges updates into what it has (JsonKeyStore does too)
                d = old.to_dict()
                d.update(keys.to_dict())
                keys = keys_from_bytes(json.dumps(d).encode())
            await self.bridge.keystore_request("set", name_to7(name), keys_to_bytes(keys))

        async def delete(self, name: str) -> None:
            await self.bridge.keystore_request("delete", name_to7(name))

        async def get_all(self) -> list[tuple[str, PairingKeys]]:
            out = []
            for item in await self.bridge.keystore_request("all") or []:
                try:
                    a = addr_from7(bytes(item[0]))
                    out.append((str(a), keys_from_bytes(item[1])))
                except (BridgeError, ValueError, TypeError, KeyError, IndexError):
                    continue
            return out

    return HubKeyStore


def client_class() -> type:
    """The GATT client class for each of the central's connections (bumble imported only then)."""
    from bumble import att, gatt_client

    class HubGattClient(gatt_client.Client):
        """The central's GATT client: every notification and indication goes to the hub,
        whatever it subscribed to (as a board's stack hands every one to its IRQ)."""

        def __init__(self, connection: Connection, bridge: BleBridge) -> None:
            super().__init__(connection)
            self.bridge = bridge

        def on_att_handle_value_notification(self, notification: Any) -> None:
            self.bridge.gatt_event("notify", self.connection, notification.attribute_handle,
                                   notification.attribute_value)

        def on_att_handle_value_indication(self, indication: Any) -> None:
            # Confirmed only once the event is written to a live hub socket, as a board's
            # stack confirms once its IRQ handler took the event (docs/ble.md,
            # "Indications"). With no hub to hand it to, no confirmation: the device
            # keeps the measurement and indicates it again on the next connection.
            if self.bridge.gatt_event("indicate", self.connection, indication.attribute_handle,
                                      indication.attribute_value):
                self.send_confirmation(att.ATT_Handle_Value_Confirmation())
            else:
                self.bridge.stats["unconfirmed"] += 1

    return HubGattClient
