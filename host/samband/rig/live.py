"""`samband run` / `make run`: the whole virtual rig, live.

Starts Mosquitto (TLS, per-hub ACL; a process of its own, no system
service), the receiver (into the default database, samband.paths.default_db,
where `samband readings` looks), the clinician dashboard on that database
(rig/dashboard.py: its address and a demo login in the banner), the BLE bridge with one emulated device of
each kind, and a virtual hub provisioned for them. The rig lives in one
folder (default: rig/ beside the database): the hub's flash and depot, and
the emulated devices' memory -- their bonds, stored measurements, record
numbers and clocks -- so that a rerun continues where the last run stopped,
as a real hub and real devices would: bonds hold, and nothing is stored twice.

On a terminal the view updates in place (rich): per device its name and
kind, link state, the last reading in words with its unit, how many arrived
this run and the lag from the hub's receipt to the database; above them the
uplink (connected or down, and since when), the hub's backlog and how old
the newest stored reading is, both of which grow while the link is down.
Elsewhere (tests, CI, a pipe) the same frame is printed as plain lines.
"""

from __future__ import annotations

import faulthandler
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError
from samband.paths import data_dir, default_db
from samband.reading import Reading

if TYPE_CHECKING:
    from samband.rig.broker import Broker
    from samband.rig.netns import NetLab
from samband.reading_text import describe


class Board:
    """What the view shows, fed by the receiver (readings as stored) and the hub
    (its STATUS lines); frame() is a plain snapshot, rendered as lines or a table."""

    def __init__(self, devices: list[tuple[str, str, str]]) -> None:
        self.devices = devices          # [(addr, kind, name)] in the rig's order
        self.lock = threading.Lock()
        self.latest = {}                # addr -> (text, lag s, alarm, hts s)
        self.counts = {}                # addr -> readings stored this run
        self.newest_hts = None          # s, the newest hub receipt time stored
        self.down_since = None          # monotonic time the uplink was first seen down
        self.ever_up = False            # before the first connection the link is "connecting", not down
        self.stored = 0

    def on_reading(self, hub_hex: str, seq: int, r: Reading) -> None:
        """The receiver stored reading r as record seq of hub hub_hex."""
        a = r.addr
        hts = r.hts / 1000 if r.hts is not None else None
        lag = (time.time() - hts) if hts is not None else None
        text = describe(r.named())
        with self.lock:
            self.counts[a] = self.counts.get(a, 0) + 1
            self.stored += 1
            if hts is not None and (self.newest_hts is None or hts > self.newest_hts):
                self.newest_hts = hts
            if not r.is_telemetry or a not in self.latest:  # a measurement beats hub/device telemetry
                self.latest[a] = (text, lag, r.is_alarm, hts)

    def frame(self, status: dict[str, Any] | None, now: float | None = None,
              mono: float | None = None) -> dict[str, Any]:
        """{"hub": ..., "link": ..., "devices": [...]} for one screen."""
        now = time.time() if now is None else now
        mono = time.monotonic() if mono is None else mono
        s = status or {}
        up = s.get("uplink") or {}
        connected = up.get("connected")
        if connected:
            self.ever_up = True
            self.down_since = None
        elif connected is False and self.ever_up and self.down_since is None:
            self.down_since = mono
        hubdev = {d.get("addr"): d for d in (s.get("ble") or {}).get("devices", [])}
        with self.lock:
            latest, counts, newest, stored = dict(self.latest), dict(self.counts), self.newest_hts, self.stored
        rows = []
        for addr, kind, name in self.devices:
            d = hubdev.get(addr)
            if d is None:
                state = "-"
            elif d.get("needs_pairing"):
                state = "bond lost: needs pairing"
            else:
                state = "connected" if d.get("connected") else "away"
                if d.get("bond_losses"):
                    state += " (bond lost %d×)" % d["bond_losses"]
            text, lag, alarm, _hts = latest.get(addr, ("-", None, False, None))
            rows.append({"kind": kind, "name": name, "addr": addr, "state": state, "last": text,
                         "alarm": alarm, "stored": counts.get(addr, 0), "lag": lag})
        return {
            "status": bool(status),
            "boot": s.get("boot"),
            "heap_kb": (s.get("heap_alloc") or 0) // 1024,
            "problems": list(s.get("problems") or []),
            "link": "up" if connected else ("?" if connected is None else ("down" if self.ever_up else "connecting")),
            "down_for": None if self.down_since is None else mono - self.down_since,
            "link_error": _last_line(up.get("error")),
            "backlog": up.get("pending", (s.get("journal") or {}).get("pending")),
            "bearers": [dict(b) for b in up.get("bearers") or []],
            "routine": up.get("bearer"),
            "age": None if newest is None else max(0.0, now - newest),
            "stored": stored,
            "devices": rows,
        }


def _last_line(text: str | None) -> str | None:
    """The hub's last uplink error, which may be a whole traceback, as its last line."""
    if not text:
        return None
    lines = [x.strip() for x in str(text).splitlines() if x.strip()]
    return lines[-1] if lines else None


def bearer_line(f: dict[str, Any]) -> str:
    """Each bearer's state in one line ("" with none: the hub is on the default route)."""
    if not f.get("bearers"):
        return ""
    parts = []
    for b in f["bearers"]:
        t = f"{b['name']} ({b.get('kind')}) {b.get('state')}"
        if b.get("reason"):
            t += "/" + b["reason"]
        t += ", session " + ("live" if b.get("live") else "none")
        if b["name"] == f.get("routine"):
            t += ", carries routine data"
        parts.append(t)
    out = "bearers: " + "; ".join(parts)
    if f.get("routine") == "none":
        out += " | NO BEARER can carry data"
    return out


def _secs(x: float | None) -> str:
    return "-" if x is None else ("%.1f s" % x if x < 100 else "%d s" % x)


def head_line(f: dict[str, Any]) -> str:
    """The rig's state in one line: hub, uplink, backlog, how old the newest stored reading is."""
    if not f["status"]:
        return "hub: starting, waiting for its first status | stored this run %d" % f["stored"]
    link = {"up": "uplink connected", "down": "uplink DOWN", "connecting": "uplink connecting",
            "?": "uplink not started"}[f["link"]]
    if f["link"] == "down" and f["down_for"] is not None:
        link += " for %s" % _secs(f["down_for"])
        if f["link_error"]:
            link += " (%s)" % f["link_error"]
    out = (f"hub boot {f['boot']}, heap {f['heap_kb']} KB | {link} | backlog on the hub "
           f"{'?' if f['backlog'] is None else f['backlog']} records | stored this run {f['stored']}, "
           f"newest {_secs(f['age'])} old")
    if f["problems"]:
        out += " | problems: " + "; ".join(f["problems"])
    return out


def plain_lines(f: dict[str, Any]) -> list[str]:
    """A frame as plain text lines (not a terminal)."""
    lines = [time.strftime("%H:%M:%S ") + head_line(f)]
    if bearer_line(f):
        lines.append("  " + bearer_line(f))
    for d in f["devices"]:
        lines.append(f"  {d['kind']:7} {d['name']:18} {d['addr']:20} {d['state']:10} stored {d['stored']:6}  "
                     f"last: {d['last']}" + (f"  (lag {d['lag']:.2f} s)" if d["lag"] is not None else "")
                     + ("  ALARM" if d["alarm"] else ""))
    return lines


def rich_view(f: dict[str, Any], intro: str) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text
    t = Table(expand=False, show_edge=False, pad_edge=False)
    for col, kw in (("device", {}), ("kind", {}), ("address", {"style": "dim"}), ("link", {}),
                    ("last reading", {}), ("stored", {"justify": "right"}), ("lag", {"justify": "right"})):
        t.add_column(col, **kw)
    for d in f["devices"]:
        state = Text(d["state"], style="green" if d["state"].startswith("connected") else
                     ("red" if "bond" in d["state"] else "yellow"))
        last = Text(d["last"] + ("  ALARM" if d["alarm"] else ""), style="bold red" if d["alarm"] else "")
        t.add_row(d["name"], d["kind"], d["addr"], state, last, str(d["stored"]), _secs(d["lag"]))
    style = "bold red" if f["link"] == "down" else ""
    bl = bearer_line(f)
    bearers = Text(bl, style="bold red" if f.get("routine") == "none" else "")
    return Group(Text(intro, style="dim"), Text(head_line(f), style=style), *([bearers] if bl else []), t,
                 Text("Ctrl-C stops; `samband readings` shows what was stored", style="dim"))


def two_bearers(out: Callable[[str], None]) -> tuple[NetLab | None, str]:
    """(NetLab with bearers a and b, a line saying so), or (None, the one line
    saying why the hub is on the host's network instead)."""
    from samband.rig import netns
    try:
        lab = netns.NetLab(("a", "b"))
    except (netns.NetnsError, OSError) as e:
        line = (f"samband: no network namespaces ({e}): the virtual hub uses the host's network, "
                f"one path to the broker, no bearers")
        out(line)
        return None, line
    return lab, (f"samband: two bearers, a and b: veths {lab.dev('a')} and {lab.dev('b')} from namespace {lab.hub} "
                 f"to {lab.cloud} (the broker); faults: ip -n {lab.hub} link set {lab.dev('a')} down, "
                 f"or an nftables drop in {lab.cloud} (samband.rig.netns)")


def where_broker(broker: Broker, lab: NetLab | None) -> str:
    if lab is None:
        return f"localhost:{broker.port}"
    from samband.rig.netns import BROKER_IP
    return f"{BROKER_IP}:{broker.port} in namespace {lab.cloud}"


STOP_REPORT_S = 20  # a rig that has not stopped after this long prints every thread's stack


def run(seconds: float | None = None, heap: str | int = "512k", root: str | Path | None = None,
        db: str | None = None, every: float = 2.0, out: Callable[[str], None] = print, speed: float = 1.0,
        live: bool = False) -> None:
    from samband.bridge.server import BleBridge
    from samband.bridge.sim import DEFAULT_SET
    from samband.receiver.ingest import Ingest
    from samband.receiver.store import open_store
    from samband.receiver.subscriber import Receiver
    from samband.rig.broker import RECEIVER_USER, Broker
    from samband.rig.hubs import UID, Rig
    root = Path(root or data_dir() / "rig")
    db = str(db or default_db())
    root.mkdir(parents=True, exist_ok=True)
    specs = [dict(d, speed=speed) if d["kind"] == "polar" else dict(d) for d in DEFAULT_SET]
    devices = [{"addr": d["address"] + "/r", "kind": d["kind"], "name": ""} for d in DEFAULT_SET]
    from samband.rig.hubs import rig_flash
    fresh = not rig_flash(root / "flash", out).exists_file("/keys/hub.key")
    store = open_store(db)
    if fresh and store.count(UID.hex()):
        n = store.count(UID.hex())
        store.close()
        # a new hub under the same id would number its readings from 0 again: the receiver
        # would take them for replays of the ones it holds and drop them
        raise SambandError(f"{db} holds {n} readings of hub {UID.hex()} from a rig whose folder is gone, and "
                           f"{root} has no hub: give --db a new database, or --root the old rig's folder")
    end = None if seconds is None else time.monotonic() + seconds
    lab, net_note = two_bearers(out)
    try:
        if lab is None:
            broker = Broker(root / "broker")
        else:
            from samband.rig.netns import BROKER_PORT
            broker = Broker(root / "broker", port=BROKER_PORT, bind="0.0.0.0", netns=lab.cloud)
        password = broker.add_hub(UID.hex())
        broker.start()
    except BaseException:
        if lab is not None:
            lab.close()
        raise
    bridge = rx = dash = None
    view = None
    try:
        # the devices' bonds and memory live beside the hub's flash, so both sides of a bond survive together
        bridge = BleBridge(devices=specs, state=root / "devices")
        board = Board([(d["addr"], d["kind"], sim.name) for d, sim in zip(devices, bridge.sims)])
        where = bridge.start()
        hub_config = {"status_ms": int(every * 1000),
                      "uplink": {"host": "localhost", "port": broker.port, "keepalive": 10,
                                 "batch_age_ms": 500, "status_ms": 2000}}
        rx_port, hub_bridge = broker.port, where
        if lab is not None:
            # the hub reaches the host's BLE bridge, and the receiver the cloud's broker, by a Door each
            hub_bridge = ("127.0.0.1", lab.door(lab.hub, None, where).port)
            rx_port = lab.door(None, lab.cloud, ("127.0.0.1", broker.port)).port
            hub_config["bearers"] = lab.bearer_config()
        rig = Rig(root, devices=devices, bridge=hub_bridge, heap=heap, depot=root / "depot", hub_config=hub_config,
                  files={"/keys/ca.der": broker.ca_der.read_bytes(), "/keys/mqtt.password": password.encode()},
                  netns=lab.hub if lab is not None else None)
        if fresh:
            rig.provision()
        # the receiver knows the hub from the depot the rig provisioned it from
        rx = Receiver(Ingest(rig.depot.opener(), store, board.on_reading), "localhost", rx_port, broker.ca_pem,
                      RECEIVER_USER, broker.users[RECEIVER_USER]).start()
        from samband.rig.dashboard import DEMO_USER, RigDashboard
        dash = RigDashboard(db, root)
        url = dash.start()
        with rig:
            intro = (f"samband: broker on {where_broker(broker, lab)} (TLS), receiver into {db}, virtual hub on "
                     f"{rig.hub.port}, BLE bridge on {where[0]}:{where[1]} with {len(devices)} emulated devices; "
                     + (f"new rig in {root}: hub provisioned, devices not yet bonded" if fresh else
                        f"rig in {root} continues: the hub's journal, bonds and the devices' records are kept")
                     + f"\nsamband: clinician dashboard on {url} (user {DEMO_USER}, its password in "
                       f"{dash.login_file}, readable by you only)\n" + net_note)
            if not live:
                out(intro)
            else:
                from rich.console import Console
                from rich.live import Live
                view = Live(rich_view(board.frame(None), intro), console=Console(), auto_refresh=False,
                            transient=False)
                view.start()
            try:
                while True:
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    time.sleep(every if left is None else min(every, left))
                    if left is not None and left < every / 2:
                        break  # a sliver of the time was left: the last frame is on screen already
                    f = board.frame(rig.statuses[-1] if rig.statuses else None)
                    if view is not None:
                        view.update(rich_view(f, intro), refresh=True)
                    else:
                        for line in plain_lines(f):
                            out(line)
            except KeyboardInterrupt:
                pass  # Ctrl-C: stop everything in order and say what was stored
            finally:
                # Stopping takes seconds; if it ever takes much longer, say where
                # every thread is (stderr) instead of hanging silently.
                faulthandler.dump_traceback_later(STOP_REPORT_S, exit=False)
    finally:
        try:
            if view is not None:
                view.stop()
            if dash is not None:
                dash.stop()
            if rx is not None:
                rx.stop()
            store.close()
            if bridge is not None:
                bridge.stop()
            broker.stop()
            if lab is not None:
                lab.close()
        finally:
            faulthandler.cancel_dump_traceback_later()
    out(f"stored {board.stored} readings this run into {db}; `samband readings"
        + ("" if db == default_db() else f" --db {db}") + "` shows them")

