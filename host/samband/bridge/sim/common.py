"""What every emulated device shares: Device Information and Battery, the
Current Time service for devices with a settable clock, advertising, and the
fault switchboard (docs/ble.md, "Emulated devices").

A Sim is built on a bumble Device that the bridge creates (its own
controller on the bridge's LocalLink, or a real controller through a bumble
transport). All payloads come from the firmware's profile encoders
(hub.profiles), so a sim sends exactly the bytes the specifications define.
Everything here runs on the bridge's event loop; tests reach it with
BleBridge.call() / BleBridge.fault().

One module: Sim is the base every emulated device subclasses, and its parts
share one device's state: the GATT services it serves, advertising and
re-advertising, connection and subscription callbacks, the state kept across
runs, paced notifications and indications, and the faults the tests switch
on, which act on that same connection and queue. StoredIndications and
KeepingSim (a device that keeps measurements until confirmed) are a few
dozen lines built on Sim's indicate() and state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bumble import att, gatt, hci
from bumble.core import UUID

from hub import profiles
from hub.profiles import timefmt

log = logging.getLogger("samband.bridge.sim")

READ = gatt.Characteristic.Properties.READ
WRITE = gatt.Characteristic.Properties.WRITE
WRITE_NR = gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE
NOTIFY = gatt.Characteristic.Properties.NOTIFY
INDICATE = gatt.Characteristic.Properties.INDICATE

CCCD = gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR

# ATT application / common profile error codes (CSS Part B)
ATT_CCCD_IMPROPER = 0xFD
ATT_IN_PROGRESS = 0xFE
ATT_OUT_OF_RANGE = 0xFF

# HCI reasons a sim disconnects with
LINK_LOST = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR  # 0x08, as a link that faded away
USER_TERMINATED = hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR


def uuid_of(u: int | str | UUID) -> UUID:
    """A bumble UUID from an int (16-bit SIG) or a 128-bit UUID string."""
    if isinstance(u, UUID):
        return u
    if isinstance(u, int):
        return UUID.from_16_bits(u)
    return UUID(u)


def ad(kind: int, data: bytes) -> bytes:
    return bytes([len(data) + 1, kind]) + bytes(data)


def parse_addr(text: str) -> hci.Address:
    """'C0:5A:4B:00:00:01' (random static) or '00:11:22:33:44:55/P' (public) -> bumble Address."""
    t = text.strip().upper()
    if t.endswith("/P"):
        return hci.Address(t[:-2], hci.Address.PUBLIC_DEVICE_ADDRESS)
    return hci.Address(t, hci.Address.RANDOM_DEVICE_ADDRESS)


def _to_json(v: object) -> Any:
    """Device memory to JSON: bytes and tuples tagged, so that they come back as they were
    (a record's time is a tuple that RACP compares with other tuples)."""
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, tuple):
        return {"$tuple": [_to_json(x) for x in v]}
    if isinstance(v, list):
        return [_to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: _to_json(x) for k, x in v.items()}
    return v


def _from_json(v: object) -> Any:
    if isinstance(v, dict):
        if set(v) == {"$bytes"}:
            return bytes.fromhex(v["$bytes"])
        if set(v) == {"$tuple"}:
            return tuple(_from_json(x) for x in v["$tuple"])
        return {k: _from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    return v


def addr7(address: hci.Address) -> bytes:
    """bumble Address -> the bridge protocol's 7 bytes (type, then MSB first)."""
    return bytes([0 if address.is_public else 1]) + bytes(reversed(bytes(address)))


class Sim:
    """Base of every emulated device. Subclasses set KIND, NAME, MODEL (ADV_UUIDS where a device
    advertises other than its kind's service) and implement services() (and optionally
    on_subscribe / burst_one / run)."""

    KIND = "device"
    NAME = "Samband sim"
    MODEL = "SIM-1"
    MANUFACTURER = "Samband Labs"
    ADV_UUIDS = None        # advertised service UUIDs (ints: 16-bit, strings: 128-bit); None: its kind's
                            # SERVICE (hub.kinds.<KIND>), the one the hub's scan looks for
    HAS_CLOCK = False       # Current Time Service (0x1805) with a writable 0x2A2B
    SECURE = False          # characteristics of the main service need an encrypted link
    OPTS = ()               # extra options a kind takes besides its constructor arguments
    # Attributes that are the device's memory (stored records, record counters, a
    # session's start): with a state folder (keep_state) they outlive the run, as
    # a real device's memory outlives a restart of the rig. The clock offset and
    # stored indications are kept for every kind.
    STATE = ()
    SAVE_EVERY_S = 0.5

    def __init__(self, address: str | hci.Address, name: str | None = None, battery: int = 87,
                 secure: bool | None = None, serial: str | None = None, adv_interval_ms: int = 100,
                 clock_offset: int = 0, peer_mtu: int | None = None, **opts: Any) -> None:
        self.address = parse_addr(address) if isinstance(address, str) else address
        self.name = name or self.NAME
        self.level = battery
        self.secure = self.SECURE if secure is None else bool(secure)
        self.serial = serial or "".join("%02X" % b for b in bytes(self.address))[:8]
        self.adv_interval_ms = adv_interval_ms
        self.offset = clock_offset   # device clock = real UTC + offset (seconds)
        # An ATT MTU the device asks for itself, as some phones' and meters' stacks do,
        # while the hub discovers its services (None: it only answers the hub's exchange)
        self.peer_mtu = None if peer_mtu is None else int(peer_mtu)
        if self.peer_mtu is not None and not 23 <= self.peer_mtu <= 517:
            raise ValueError("peer_mtu must be 23..517")
        unknown = sorted(set(opts) - set(self.OPTS))
        if unknown:
            raise ValueError("unknown option%s %s" % ("s" if len(unknown) > 1 else "", ", ".join(unknown)))
        self.opts = opts
        self.device = None
        self.is_silent = False
        self.drop_after = None
        self.notified = 0            # notifications and indications sent
        self.peer_mtu_exchanges = 0  # MTU exchanges the device started and the hub answered
        self.connections = []
        self.flow = None             # set by the bridge: awaitable pacing for streams
        self._tasks = set()
        self._adv_task = None
        self.on_link = True          # False on a real controller (transport)
        self.state_file = None       # keep_state(): where the device's memory lives
        self.bond_file = None
        self.stores = []             # StoredIndications of this device, in the order made
        self._saved = None

    # ------------------------------------------------------------ identity
    @property
    def addr(self) -> bytes:
        return addr7(self.address)

    def describe(self) -> str:
        return "%-13s %-22s %s" % (self.KIND, str(self.address), self.name)

    # ------------------------------------------------------------ clock
    def now(self) -> int:
        """The device clock: local wall time as seconds since 1970 (read as UTC)."""
        return int(time.time()) + self.offset

    def now_dt(self) -> tuple[int, ...]:
        return timefmt.civil(self.now())[:6]

    # ------------------------------------------------------------ GATT helpers
    def char(self, uuid: int | str, props: int, value: bytes = b"", read: Callable[..., bytes] | None = None,
             write: Callable[..., Any] | None = None, secure: bool | None = None) -> gatt.Characteristic:
        """A characteristic; read/write are plain functions (connection[, value])."""
        sec = self.secure if secure is None else secure
        perms = 0
        if props & READ or read is not None:
            perms |= gatt.Characteristic.READABLE
            if sec:
                perms |= gatt.Characteristic.READ_REQUIRES_ENCRYPTION
        if props & (WRITE | WRITE_NR):
            perms |= gatt.Characteristic.WRITEABLE
            if sec:
                perms |= gatt.Characteristic.WRITE_REQUIRES_ENCRYPTION
        if read is not None or write is not None:
            value = gatt.CharacteristicValue(read=read, write=write)
        ch = gatt.Characteristic(uuid_of(uuid), props, perms, value)
        if sec and props & (NOTIFY | INDICATE):
            # Subscribing needs encryption too (GLS/CGMS security requirements):
            # our own CCCD with encryption permissions, served by bumble's CCCD logic.
            server = self.device.gatt_server
            ch.descriptors = [gatt.Descriptor(
                CCCD, gatt.Attribute.READABLE | gatt.Attribute.WRITEABLE
                | gatt.Attribute.READ_REQUIRES_ENCRYPTION | gatt.Attribute.WRITE_REQUIRES_ENCRYPTION,
                server.make_descriptor_value(ch))]
        return ch

    def common_services(self) -> list[gatt.Service]:
        dis = [(0x2A29, self.MANUFACTURER), (0x2A24, self.MODEL), (0x2A25, self.serial),
               (0x2A26, "1.4.2"), (0x2A27, "B"), (0x2A28, "samband-sim")]
        chars = [self.char(u, READ, profiles.encode(u, {"text": t}), secure=False) for u, t in dis]
        chars.append(self.char(0x2A23, READ, profiles.encode(
            0x2A23, {"manufacturer": int.from_bytes(bytes(self.address)[:5], "little"), "oui": 0x5A4B43}),
            secure=False))
        chars.append(self.char(0x2A50, READ, profiles.encode(
            0x2A50, {"source": 1, "vendor": 0x05F1, "product": 0x5A00 + len(self.KIND), "version": 0x0100}),
            secure=False))
        self.battery_char = self.char(0x2A19, READ | NOTIFY,
                                      read=lambda conn: profiles.encode(0x2A19, {"level": self.level}),
                                      secure=False)
        out = [gatt.Service(uuid_of(0x180A), chars), gatt.Service(uuid_of(0x180F), [self.battery_char])]
        if self.HAS_CLOCK:
            self.time_char = self.char(0x2A2B, READ | WRITE | NOTIFY, read=self._read_time,
                                       write=self._write_time)
            out.append(gatt.Service(uuid_of(0x1805), [self.time_char]))
        return out

    def _read_time(self, conn: Any) -> bytes:
        c = timefmt.civil(self.now())
        return profiles.encode(0x2A2B, {"time": c[:6], "dow": c[6], "frac256": 0, "adjust": 0})

    def _write_time(self, conn: Any, value: bytes) -> None:
        try:
            f = profiles.parse(0x2A2B, value)
        except ValueError:
            raise att.ATT_Error(error_code=ATT_OUT_OF_RANGE) from None
        t = timefmt.epoch(f["time"])
        if t is None:
            raise att.ATT_Error(error_code=ATT_OUT_OF_RANGE)
        self.offset = t - int(time.time())
        log.info("%s clock set to %s", self.name, f["time"])

    def services(self) -> list[gatt.Service]:
        """The device's own services (besides DIS, battery and time)."""
        return []

    # ------------------------------------------------------------ advertising
    def adv_data(self) -> bytes:
        d = ad(0x01, b"\x06")
        uuids = self.ADV_UUIDS
        if uuids is None:
            from hub import kinds
            uuids = (kinds.get(self.KIND).SERVICE,)
        u16 = [u for u in uuids if isinstance(u, int)]
        u128 = [u for u in uuids if not isinstance(u, int)]
        if u16:
            d += ad(0x03, b"".join(u.to_bytes(2, "little") for u in u16))
        for u in u128:
            d += ad(0x07, bytes(reversed(bytes.fromhex(u.replace("-", "")))))
        name = self.name.encode()
        room = 31 - len(d) - 2
        if room > 0:
            d += ad(0x09, name) if len(name) <= room else ad(0x08, name[:room])
        return d

    def scan_response(self) -> bytes:
        return ad(0x09, self.name.encode()[:29])

    async def attach(self, device: Any) -> None:
        """Called by the bridge with a powered-off bumble Device for this sim."""
        self.device = device
        if self.bond_file is not None:
            from bumble.keys import JsonKeyStore
            device.keystore = JsonKeyStore(str(self.address), str(self.bond_file))
        device.add_services(self.common_services() + self.services())
        self._restore()
        device.on("connection", self._on_connection)
        device.on("characteristic_subscription", self._on_subscription)
        if self.peer_mtu is not None:
            self._exchange_mtu_in_discovery(device.gatt_server)

    def _exchange_mtu_in_discovery(self, server: Any) -> None:
        """When the hub's primary service discovery reaches the device (its first
        Read By Group Type request on a link), the device sends its own ATT Exchange
        MTU Request on that link, so it arrives while the hub's discovery runs:
        what issue 18 item 6 saw cut a board's discovery short. bumble looks the
        handler up by name on the server, so this instance's one goes first."""
        server.max_mtu = self.peer_mtu  # its Rx MTU: the same in its own request and in its answers
        answer = server.on_att_read_by_group_type_request

        def on_request(bearer: Any, request: Any) -> None:
            answer(bearer, request)
            conn = bearer if hasattr(bearer, "gatt_client") else getattr(bearer, "connection", None)
            if conn is not None and not conn.gatt_client.mtu_exchange_done:
                self.spawn(self._request_mtu(conn))
        server.on_att_read_by_group_type_request = on_request

    async def _request_mtu(self, conn: Any) -> None:
        try:
            got = await conn.gatt_client.request_mtu(self.peer_mtu)
            self.peer_mtu_exchanges += 1
            log.info("%s: exchanged MTU %d (device-started)", self.name, got)
        except Exception as e:  # noqa: BLE001 - the link may go meanwhile; the hub's side is what is tested
            log.info("%s: MTU exchange: %s", self.name, e)

    async def start(self) -> None:
        await self.advertise()
        self.spawn(self.run())
        if self.state_file is not None:
            self.save_state()
            self.spawn(self._keep_saving())

    # ------------------------------------------------------------ memory across runs
    def keep_state(self, folder: str | Path) -> None:
        """Keep this device's bonds and memory in folder (before attach): its keys in
        <address>.bonds.json, its clock, stored indications and STATE in <address>.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        base = str(self.address).replace(":", "").replace("/", "_").lower()
        self.state_file = folder / (base + ".json")
        self.bond_file = folder / (base + ".bonds.json")

    def memory(self) -> dict[str, Any]:
        """The device's memory as JSON-able data."""
        return {"offset": self.offset, "stored": [[p.hex() for p in st.items] for st in self.stores],
                "state": {k: _to_json(getattr(self, k)) for k in self.STATE}}

    def _restore(self) -> None:
        if self.state_file is None:
            return
        try:
            m = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:  # a torn or foreign file: start new, and say so
            log.warning("%s: cannot read its memory %s (%s): starting new", self.name, self.state_file, e)
            return
        self.offset = int(m.get("offset", self.offset))
        for st, items in zip(self.stores, m.get("stored", [])):
            st.items = [bytes.fromhex(x) for x in items]
        for k, v in (m.get("state") or {}).items():
            if k in self.STATE:
                setattr(self, k, _from_json(v))

    def save_state(self) -> None:
        """Write the device's memory if it changed (atomically: a kill leaves the old or the new)."""
        if self.state_file is None:
            return
        blob = json.dumps(self.memory(), sort_keys=True)
        if blob == self._saved:
            return
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(blob, encoding="utf-8")
        os.replace(tmp, self.state_file)
        self._saved = blob

    async def _keep_saving(self) -> None:
        while True:
            await asyncio.sleep(self.SAVE_EVERY_S)
            try:
                self.save_state()
            except OSError as e:
                log.warning("%s: cannot save its memory: %s", self.name, e)

    async def advertise(self) -> None:
        if self.is_silent or self.connections or self.device is None:
            return
        try:
            await self.device.start_advertising(
                advertising_data=self.adv_data(), scan_response_data=self.scan_response(),
                advertising_interval_min=self.adv_interval_ms, advertising_interval_max=self.adv_interval_ms)
        except Exception as e:  # noqa: BLE001 - a controller refusing must not kill the bridge
            log.warning("%s: advertising failed: %s", self.name, e)

    def _on_connection(self, conn: Any) -> None:
        self.connections.append(conn)
        conn.on("disconnection", lambda reason, c=conn: self._on_disconnection(c, reason))
        self.on_connect(conn)

    def _on_disconnection(self, conn: Any, reason: int) -> None:
        if conn in self.connections:
            self.connections.remove(conn)
        self.on_disconnect(conn, reason)
        if not self.connections and not self.is_silent:
            self.spawn(self._readvertise())

    async def _readvertise(self) -> None:
        await asyncio.sleep(0.02)
        if not self.connections:
            await self.advertise()

    def _on_subscription(self, conn: Any, ch: gatt.Characteristic, notify: bool, indicate: bool) -> None:
        if notify or indicate:
            self.on_subscribe(conn, ch, notify, indicate)

    def on_connect(self, conn: Any) -> None:
        pass

    def on_disconnect(self, conn: Any, reason: int) -> None:
        pass

    def on_subscribe(self, conn: Any, ch: gatt.Characteristic, notify: bool, indicate: bool) -> None:
        """A device that keeps measurements (StoredIndications) sends them once their
        characteristic's indications are on; a sim with other behaviour overrides this."""
        for st in self.stores:
            if ch is st.ch and indicate:
                st.kick()

    async def run(self) -> None:
        """Background behaviour (periodic readings); runs for the sim's life."""

    @property
    def connected(self) -> bool:
        return bool(self.connections)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._done)
        return t

    def _done(self, t: asyncio.Future) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.warning("%s: task failed: %r", self.name, t.exception())

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        try:
            self.save_state()
        except OSError as e:
            log.warning("%s: cannot save its memory: %s", self.name, e)

    # ------------------------------------------------------------ sending
    def subscribed(self, ch: gatt.Characteristic, bit: int) -> bool:
        for cccds in self.device.gatt_server.subscribers.values():
            v = cccds.get(ch.handle)
            if v and v[0] & bit:
                return True
        return False

    async def notify(self, ch: gatt.Characteristic, data: bytes) -> bool:
        """Notify subscribers; True if it went out (subscribed, connected, not silent)."""
        if self.is_silent or not self.connections or not self.subscribed(ch, 1):
            return False
        await self.device.notify_subscribers(ch, bytes(data))
        self._sent()
        return True

    async def indicate(self, ch: gatt.Characteristic, data: bytes) -> bool:
        """Indicate and wait for the confirmation; True only if this connection confirmed it.

        A link that drops first, or a confirmation that never comes (the collector is gone),
        is False: the device keeps the measurement. (bumble's indicate_subscribers swallows
        its timeout, and its wait outlives the link: a reconnection within 30 s once made a
        lost indication look confirmed.)"""
        if self.is_silent or not self.connections or not self.subscribed(ch, 2):
            return False
        conn = self.connections[0]
        gone = asyncio.get_running_loop().create_future()

        def on_gone(*_) -> None:
            if not gone.done():
                gone.set_result(None)

        conn.on("disconnection", on_gone)
        t = asyncio.ensure_future(self.device.indicate_subscriber(conn, ch, bytes(data)))
        try:
            done, _ = await asyncio.wait([t, gone], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            t.cancel()
            raise
        finally:
            try:
                conn.remove_listener("disconnection", on_gone)
            except (KeyError, ValueError):
                pass
        if t not in done:
            t.cancel()
            return False
        if t.cancelled() or conn not in self.connections:
            return False
        if t.exception() is not None:
            if isinstance(t.exception(), (TimeoutError, asyncio.TimeoutError)):
                # An ATT transaction that timed out ends the bearer (Core spec Vol 3 Part F
                # 3.3.3): the device drops the link, and indicates again on the next one.
                log.info("%s: indication not confirmed in time: dropping the link", self.name)
                self.spawn(self._drop())
            return False
        self._sent()
        return True

    def _sent(self) -> None:
        self.notified += 1
        if self.drop_after is not None:
            self.drop_after -= 1
            if self.drop_after <= 0:
                self.drop_after = None
                asyncio.get_running_loop().call_soon(lambda: self.spawn(self._drop()))

    async def _drop(self, reason: int = LINK_LOST) -> None:
        for conn in list(self.connections):
            try:
                await conn.disconnect(reason)
            except Exception as e:  # noqa: BLE001
                log.info("%s: disconnect: %s", self.name, e)

    async def pace(self) -> None:
        """Let the hub keep up with a stream (the bridge drains its socket here)."""
        if self.flow is not None:
            await self.flow()
        else:
            await asyncio.sleep(0)

    # ------------------------------------------------------------ faults
    async def drop_link(self, after: int | None = None) -> None:
        """Drop the link now, or after the next `after` notifications/indications."""
        if after:
            self.drop_after = int(after)
        else:
            await self._drop()

    async def burst(self, n: int) -> int:
        """n notifications back to back (the device's main stream)."""
        sent = 0
        for i in range(int(n)):
            if await self.burst_one(i):
                sent += 1
        return sent

    async def burst_one(self, i: int) -> bool:
        return await self.notify(self.battery_char, profiles.encode(0x2A19, {"level": self.level}))

    async def clock_offset(self, seconds: int) -> None:
        """Put the device clock `seconds` off real time (a wrong clock)."""
        self.offset = int(seconds)

    async def battery(self, level: int) -> None:
        self.level = int(level)
        await self.notify(self.battery_char, profiles.encode(0x2A19, {"level": self.level}))

    async def forget_bond(self) -> None:
        """The device loses every bond: the hub's old LTK no longer works."""
        if self.device is not None and self.device.keystore is not None:
            await self.device.keystore.delete_all()

    async def silent(self, on: bool = True) -> None:
        """Stop (or resume) advertising and notifying; connections stay up."""
        self.is_silent = bool(on)
        if self.is_silent:
            try:
                await self.device.stop_advertising()
            except Exception as e:  # noqa: BLE001
                log.info("%s: stop advertising: %s", self.name, e)
        else:
            await self.advertise()


class StoredIndications:
    """Measurements a device keeps until a collector has confirmed them (BP cuff,
    thermometer, scale, spot-checks): all are indicated when the collector subscribes,
    new ones as they are taken; an unconfirmed one stays for the next connection."""

    def __init__(self, sim: Sim, ch: gatt.Characteristic) -> None:
        self.sim = sim
        self.ch = ch
        self.items = []
        self.sent = 0
        self._task = None
        sim.stores.append(self)  # kept with the device's memory (Sim.keep_state)

    def add(self, payload: bytes) -> None:
        self.items.append(bytes(payload))
        self.kick()

    def kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.sim.spawn(self._deliver())

    async def _deliver(self) -> None:
        while self.items and self.sim.connected and self.sim.subscribed(self.ch, 2):
            if not await self.sim.indicate(self.ch, self.items[0]):
                return
            self.items.pop(0)
            self.sent += 1


class KeepingSim(Sim):
    """A device that takes one measurement at a time and keeps it until a collector has
    confirmed it (BP cuff, thermometer, scale, the oximeter's spot checks). Its memory
    holds `stored` measurements when the run starts, as a device used before the hub
    met it does: STORED_EVERY_S apart, the newest that long ago."""

    STORED = 1              # measurements kept from before the run (the constructor's stored=)
    STORED_EVERY_S = 3600

    def __init__(self, address: str | hci.Address, stored: int | None = None, **kw: Any) -> None:
        super().__init__(address, **kw)
        self.stored = self.STORED if stored is None else int(stored)
        self.i = 0              # measurements made: varies their values

    def keep(self, ch: gatt.Characteristic, measurement: Callable[[int], bytes]) -> StoredIndications:
        """ch's StoredIndications, holding the measurements from before the run
        (measurement(when) makes the one taken at `when`, device time)."""
        store = StoredIndications(self, ch)
        now = self.now()
        for k in range(self.stored, 0, -1):
            store.items.append(measurement(now - self.STORED_EVERY_S * k))
        return store
