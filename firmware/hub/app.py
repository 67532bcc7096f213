# The hub's main task. Boots the port, counts the boot, opens the sealed
# journal, starts BLE collection (and, once configured, the uplink), and
# reports its status on the console.
#
# A hub that is not provisioned yet (no keys) still boots and says so in
# its status: it must stay reachable for the technician, never crash-loop.

import asyncio
import gc
import json

from hub import VERSION, board, ports, state, status

STATUS_EVERY_MS = 10000
KEYS = "/keys"
DEVICES = "/config/devices.json"
HUB_CONFIG = "/config/hub.json"
HUB_DEV = bytes(7)  # the device address of the hub's own telemetry


def _load_json(path, default):
    try:
        with open(path) as f:
            return json.loads(f.read())
    except OSError:
        return default
    except ValueError as e:
        raise ValueError("%s is not valid JSON: %s" % (path, e))


def load_devices(path=DEVICES):
    """The allow-list: [{"addr": bytes7, "kind": str, "name": str}]; ValueError names the defect."""
    from hub.ble import addr_parse
    from hub import kinds
    cfg = _load_json(path, {"devices": []})
    out = []
    for i, d in enumerate(cfg.get("devices", []) if isinstance(cfg, dict) else []):
        if not isinstance(d, dict) or "addr" not in d or "kind" not in d:
            raise ValueError("%s: device %d needs addr and kind" % (path, i))
        if d["kind"] not in kinds.names():
            raise ValueError("%s: device %d: unknown kind %r" % (path, i, d["kind"]))
        out.append({"addr": addr_parse(d["addr"]), "kind": d["kind"], "name": d.get("name", "")})
    return out


def save_devices(devices, path=DEVICES):
    from hub.ble import addr_str
    state.mkdirs(path.rsplit("/", 1)[0])
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps({"devices": [{"addr": addr_str(d["addr"]), "kind": d["kind"], "name": d.get("name", "")}
                                        for d in devices]}))
    import os
    os.rename(tmp, path)


def ble_problems(central, devices):
    """What this board's BLE cannot do for the allow-list, in words: a board that cannot bond
    (the Pico W) still collects every other kind, and the status names the ones it cannot."""
    if central is None or getattr(central, "bonding", True):
        return []
    from hub import kinds
    need = sorted(set(d["kind"] for d in devices if kinds.get(d["kind"]).BOND))
    return ["BLE: this board cannot bond; not collected: %s" % ", ".join(need)] if need else []


class Hub:
    def __init__(self, port, boot):
        self.port = port
        self.boot = boot
        self.started = port.ticks_ms()
        self.problems = []  # what keeps the hub from doing its job, in words
        self.journal = None
        self.sealer = None
        self.keys = None
        self.limits = None
        self.store = None
        self.central = None
        self.collector = None
        self.uplink = None
        self.clock = None
        self.ota = None
        self.ota_key = None
        self.cfg_state = None  # the serials of the signed configs in force (hub/hubcfg.py), as reported
        self.config = {}
        self.led = None  # hub/led.py, once main() runs
        self.mdns = None  # hub/mdnsd.py, once an IP bearer is up
        self.heap_steps = []  # [name, bytes] the heap grew by while each service started
        self._heap_mark = None

    def _step(self, name):
        # What each service costs in heap, measured where it starts: the
        # figures that decide whether a board has room for one more device
        # kind or a bigger journal. A few ms of gc at boot, never later.
        gc.collect()
        now = gc.mem_alloc()
        if self._heap_mark is not None:
            self.heap_steps.append([name, now - self._heap_mark])
        self._heap_mark = now

    def status(self):
        s = status.snapshot(self.port, self.boot, self.started)
        s["problems"] = self.problems
        if self.journal is not None:
            js = self.journal.stats()
            s["journal"] = {"pending": self.journal.count(), "next_seq": self.journal.next_seq,
                            "evicted": js.get("evicted"), "damaged": js.get("damaged"),
                            "refused": js.get("refused"), "fill": self.journal.fill_pct()}
        if self.store is not None:
            s["stored"] = self.store.stored
            if self.store.refused:  # readings the journal refused for lack of room (hub/store.py)
                s["held"] = [len(self.store.held), self.store.refused, self.store.lost]
        if self.limits is not None:
            s["limits"] = self.limits
        if self.collector is not None:
            s["ble"] = self.collector.stats()
        mem = s["ble"].get("memory_errors", 0) if "ble" in s else 0
        if self.uplink is not None:
            st = self.uplink.stats
            s["uplink"] = st() if callable(st) else st
            mem += s["uplink"].get("memory_errors", 0) + s["uplink"].get("no_memory", 0)
        # Hub-wide: every MemoryError the hub caught and lived through (BLE events it could
        # not handle, sessions a bearer lost to it, batches it had no room to copy), so that
        # a technician sees a hub short of heap at a glance; each part says where.
        s["memory_errors"] = mem
        if self.led is not None:
            s["led"] = self.led.shown  # "no-bearer": nothing can leave the hub (hub/led.py)
        if self.ota is not None:
            s["ota"] = self.ota.status()
        if self.cfg_state is not None:
            s["cfg"] = self.cfg_state
        if self.clock is not None:
            s["clock_source"] = self.clock.stats()  # "clock" (set or not) is status.snapshot's
        if self.mdns is not None:
            s["mdns"] = self.mdns.stats()
        if self.heap_steps:
            s["heap_steps"] = self.heap_steps
        return s

    def emit_status(self):
        # One JSON line, prefixed, so the host can read it off the console, streamed
        # (status.emit says why). A status that does not fit in the heap right now must
        # not stop the hub; a line cut short by it is ended first.
        import sys
        try:
            status.emit(self.status(), sys.stdout)
        except MemoryError:
            gc.collect()
            print('\nSTATUS {"error": "MemoryError", "heap_free": %d}' % gc.mem_free())

    async def status_task(self, every_ms):
        while True:
            self.emit_status()
            await asyncio.sleep_ms(every_ms)

    def log(self, msg):
        print("hub: " + msg)

    def bearer_up(self, bearer):
        """A bearer came up: ask it for the time (the modem's network time; SNTP
        where the bearer carries UDP). The clock decides whether to believe it."""
        from hub import clock
        if bearer.kind == "cellular":
            asyncio.create_task(clock.from_modem(bearer.at, self.clock))
        elif bearer.kind in ("wifi", "lan"):
            asyncio.create_task(clock.from_sntp(self.clock, self.config.get("ntp", "pool.ntp.org")))
        if bearer.kind != "cellular" and self.mdns is None and self.port.mdns_port():
            # advertise _samband._tcp on the LAN (samband discover --lan); loaded only now
            from hub import mdnsd
            try:
                self.mdns = mdnsd.start(self.port, bearer, board.load()["name"], VERSION)
            except (OSError, ValueError) as e:
                self.problems.append("mdns: %s" % e)
                return
            asyncio.create_task(_keep("mdns", self.mdns.run, self))

    def hub_telemetry(self, mdc, val, unit=None):
        """A telemetry reading about the hub itself (bearer changes, clock jumps):
        device address all zeros, which no BLE device has."""
        if self.store is None:
            return
        from hub import reading
        p = {reading.MDC: mdc, reading.VAL: val}
        if unit:
            p[reading.UNIT] = unit
        self.store.put(p, HUB_DEV, reading.PRIO_TELEMETRY)  # committed by the store's task, as any live value

    def _unseal_config(self):
        """Fill the config's sealed secrets in (RAM only: hub/vault.py). The vault module is
        needed once, at boot: it is dropped again (about 2 KB of bytecode back to the heap)."""
        import hub
        from hub import vault
        self.problems.extend(vault.load_into(self.config, self.keys.hub_secret, KEYS + "/vault"))
        del vault
        hub.forget("hub.vault")
        gc.collect()

    def start_services(self):
        """Journal, sealer, BLE and collection, each as far as the flash allows."""
        import os
        try:
            os.stat(KEYS + "/hub.key")
        except OSError:
            # Nothing to seal with: collect nothing, load nothing heavy, stay reachable.
            self.problems.append("not provisioned: no %s/hub.key (run samband provision)" % KEYS)
            return
        self._step(None)
        from hub import seal
        from hub.journal import Journal
        from hub.store import Store
        self._step("code")
        try:
            self.config = _load_json(HUB_CONFIG, {})
        except ValueError as e:
            self.problems.append(str(e))
        rebond = self.config.get("rebond", "auto")
        if rebond not in ("auto", "window"):
            self.problems.append("config: rebond %r is neither \"auto\" nor \"window\"; using \"window\"" % (rebond,))
            rebond = "window"
        jcfg = self.config.get("journal", {})
        self.journal = Journal(root="/journal", capacity=jcfg.get("capacity", 512 * 1024))
        self._step("journal")
        uid = self.port.unique_id()
        try:
            self.keys, self.sealer = seal.from_flash(uid, KEYS, on_epoch=self.journal.context)
            self.sealer.prepare()
        except seal.SealError as e:
            self.problems.append(str(e))
            return
        import os
        if [n for n in os.listdir(KEYS) if n.startswith("limits")]:  # else the kinds' defaults, no code loaded
            from hub import limits  # the patient's alarm limits, before any reading is judged
            self.limits = limits.boot(self.keys, KEYS, self.problems)  # (the module drops itself)
            del limits
        self.journal.telemetry = lambda seq, info: self.sealer.seal(seq, json.dumps(info).encode())
        self.store = Store(self.journal, self.sealer, self.port, self.boot)
        self.store.telemetry = self.hub_telemetry  # the journal's fill warning
        self._step("seal")
        if "_sealed" in json.dumps(self.config):  # it names sealed secrets (Wi-Fi, APN, MQTT)
            self._unseal_config()
        try:
            devices = load_devices()
        except ValueError as e:
            self.problems.append(str(e))
            devices = []
        from hub.ble.bonds import BondStore
        bonds = BondStore(KEYS + "/bonds", self.keys.hub_secret)
        try:
            self.central = self.port.ble(bonds)
        except (OSError, ValueError) as e:
            # ValueError: a `bluetooth` build that refuses a config key. Collection of other
            # boards' kinds and the uplink still start below; the status says why BLE did not.
            self.problems.append("BLE: %s: %s" % (type(e).__name__, e))
        self.problems.extend(ble_problems(self.central, devices))
        if self.central is None and devices:
            self.problems.append("no BLE radio: %s" % (
                "start the virtual hub with SAMBAND_BLE_BRIDGE=host:port" if self.port.name == "unix"
                else "this board has none"))
        self._step("ble")
        if self.central is not None:
            from hub.collect import Collector
            self.collector = Collector(self.central, self.store, self.port, devices, bonds, log=self.log)
            self.collector.on_pair = lambda addr, kind: save_devices(
                [{"addr": d.addr, "kind": d.kind, "name": d.name} for d in self.collector.devices.values()])
            self.collector.rebond = rebond
            keep_rr = self.config.get("keep_rr", False)  # samband provision --rr-intervals keep|drop
            if not isinstance(keep_rr, bool):
                self.problems.append("config: keep_rr %r is not true or false; dropping RR intervals" % (keep_rr,))
                keep_rr = False
            self.collector.keep_rr = keep_rr
            if self.config.get("pairing_s"):
                self.collector.open_pairing(self.config["pairing_s"])
            self._step("collect")
        up = self.config.get("uplink")
        if up and up.get("host"):
            from hub.uplink import Uplink
            cfg = dict(up)
            cfg["hub_id"] = uid
            cfg["version"] = VERSION
            cfg.setdefault("ca", KEYS + "/ca.der")
            cfg.setdefault("password_file", KEYS + "/mqtt.password")
            try:
                bearers = self.port.bearers(self.config)  # provisioned order; [] = the default route
            except ValueError as e:  # BearerError: a kind the board lacks, a bad entry
                self.problems.append("bearers: %s" % e)
                bearers = []
            from hub.clock import Clock, boot_anchor
            self.clock = Clock(self.port, self.hub_telemetry)
            boot_anchor(self.port, self.hub_telemetry)
            self.uplink = Uplink(self.journal, cfg, self, bearers, self.hub_telemetry, self.bearer_up,
                                 lambda utc, unc: self.clock.offer("receiver", utc, unc))
            self.store.on_alarm = self.uplink.notify  # alarms leave at once, ahead of the backlog
            self.cfg_state = {"k": self.keys.serial, "l": (self.limits or {}).get("serial", 0)}
            self.uplink.set_config(self.take_config, self.cfg_state)
            self._step("uplink")
            self.start_ota()

    def take_config(self, payload):
        """A signed config from the uplink (limits, receiver keys): hub.hubcfg, loaded only now."""
        from hub import hubcfg
        hubcfg.take(payload, self.keys, self.sealer, self.cfg_state, KEYS, self.hub_telemetry, self.log)
        if self.limits is not None:
            self.limits["serial"] = self.cfg_state["l"]

    def start_ota(self):
        """Updates over the air, with the provisioned release key (keys/release.pub). hub.ota
        (about 15 KB of heap on the unix port) loads only when an update is under way at boot
        (a stage, a trial, a roll-back to note) or when the first update message arrives."""
        import os
        try:
            with open(KEYS + "/release.pub", "rb") as f:
                self.ota_key = f.read(33)
        except OSError:
            self.ota_key = b""
        if len(self.ota_key) != 32:
            self.ota_key = None
            return  # provisioned before releases existed: no updates over the air
        try:
            with open("/fw/active") as f:
                busy = len(f.read().strip()) == 3
        except OSError:
            busy = False
        try:
            os.stat("/fw/ota")
            busy = True
        except OSError:
            pass
        self.uplink.set_ota(self.make_ota() if busy else None, self.make_ota)

    def make_ota(self):
        """The update service (hub.ota.Ota), told where an update stood at the last reset."""
        from hub import ota
        o = ota.Ota(board.load()["name"], VERSION, self.ota_key, self.config.get("ota"), self.hub_telemetry,
                    self.log, slots=self.port.firmware_slots(),
                    room=self.journal.may_take if self.journal is not None else None)  # the journal's flash first
        self.log("ota: %s" % o.start())
        self.ota = o
        return o

    async def ota_task(self):
        while self.ota is None:
            await asyncio.sleep_ms(1000)
        from hub import ota
        await ota.run(self.ota, self.journal, self.port, self.started, self.store.commit, up=self.uplink)


def boot_quiet():
    """The hub's objects without counting a boot: for a host asking for status."""
    b = board.load()
    return Hub(ports.load(b), state.read_int("boot"))


def boot():
    b = board.load()
    port = ports.load(b)
    n = state.next_boot()
    hub = Hub(port, n)
    print("samband hub %s on %s (%s port), boot %d, reset: %s"
          % (VERSION, b["name"], port.name, n, port.reset_cause()))
    try:
        hub.start_services()
    except MemoryError as e:
        hint = " (a virtual hub needs --heap 320k for the full firmware: on the unix port its bytecode lives in the heap)" \
            if port.name == "unix" else ""
        hub.problems.append("MemoryError: %s%s" % (e, hint))
    except Exception as e:  # noqa: BLE001 - a broken service must leave the hub reachable
        hub.problems.append("%s: %s" % (type(e).__name__, e))
    for p in hub.problems:
        print("hub: " + p)
    return hub


async def _keep(name, fn, hub):
    """Run a service; if it dies, say why and start it again (a hub never stops collecting)."""
    while True:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - reported and restarted
            hub.problems.append("%s stopped: %s: %s" % (name, type(e).__name__, e))
            del hub.problems[:-8]
            gc.collect()
            await asyncio.sleep(1)


async def main(hub, status_every_ms=None, console=True):
    gc.collect()
    status_every_ms = status_every_ms or hub.config.get("status_ms", STATUS_EVERY_MS)
    tasks = [asyncio.create_task(_keep("status", lambda: hub.status_task(status_every_ms), hub))]
    if hub.store is not None:  # the commit task: the store alone decides when readings become durable
        tasks.append(asyncio.create_task(_keep("store", hub.store.run, hub)))
    if hub.collector is not None:
        tasks.append(asyncio.create_task(_keep("collector", hub.collector.run, hub)))
    if hub.uplink is not None:
        tasks.append(asyncio.create_task(_keep("uplink", hub.uplink.run, hub)))
    from hub.led import Led
    hub.led = Led(hub.port, hub.uplink.link_state if hub.uplink is not None else lambda: None)
    tasks.append(asyncio.create_task(_keep("led", hub.led.run, hub)))
    if hub.ota_key is not None:
        tasks.append(asyncio.create_task(_keep("ota", hub.ota_task, hub)))
    if console:
        from hub.console import Console
        hub.console = Console(hub)
        tasks.append(asyncio.create_task(_keep("console", hub.console.run, hub)))
    await tasks[0]


def run():
    hub = boot()
    asyncio.run(main(hub))
