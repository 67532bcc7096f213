"""A virtual rig: a provisioned virtual hub, wired to a BLE bridge with
emulated devices (and, when given, a broker and receiver). What `make run`
shows and what the end-to-end tests drive; the HIL tests ask it for a
state instead of spelling out the steps."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from samband.device import build
from samband.device.console import parse_status
from samband.device.depot import Depot
from samband.device.provision import files_for, to_flash
from samband.errors import HubError
from samband.vhub import Flash, VirtualHub
from samband.vhub.flash import HOST_FILES

# The whole firmware from a folder on the 64-bit unix port (README: the virtual
# hub). 256k was the edge: with the status LED and the sealed secrets loaded, a
# glucose profile's first import at a notification found 49 KB free but no
# 1.3 KB block in one piece (issue 17 is where the firmware shrinks).
FULL_HEAP = "320k"
UID = bytes.fromhex("00005a4d0001")


class Rig:
    def __init__(self, root: str | Path | None = None, devices: Iterable[dict[str, Any]] = (),
                 bridge: tuple[str, int] | None = None, heap: str | int = FULL_HEAP,
                 hub_config: dict[str, Any] | None = None, depot: str | Path | None = None,
                 log: Callable[[str], None] | None = None, env: dict[str, str] | None = None,
                 files: dict[str, bytes] | None = None, romfs: bool = False, netns: str | None = None,
                 warp: bool = False) -> None:
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="samband-rig-")
            root = self._tmp.name
        self.root = Path(root)
        self.flash = self.root / "flash"
        self.depot = Depot(depot or self.root / "depot")
        self.devices = list(devices)  # [{"addr": "AA:..", "kind": "glucose"}]
        self.bridge = bridge          # (host, port) of a BLE bridge, or None
        self.heap = heap
        self.romfs = romfs  # run the hub package from build/vhub.romfs (in place, as from a ROM partition)
        self.hub_config = dict(hub_config or {})
        self.log = log
        self.env = dict(env or {})
        self.files = dict(files or {})  # more files for the hub's flash, e.g. {"/keys/ca.der": b"..."}
        self.netns = netns  # a network namespace for the hub (samband.rig.netns), or None: the host's
        self.warp_file = self.root / "clock.warp" if warp else None  # warp(ms) moves the hub's clock on
        self.hub = None
        self.lines = []               # console lines, in order
        self.statuses = []            # parsed STATUS maps, in order
        self._reader = None
        self._stop = threading.Event()
        self.running = False

    @property
    def port(self) -> str:
        """The hub's console (the virtual hub's pty)."""
        return self.hub.port

    def power_cut(self) -> None:
        """Pull the hub's plug and power it on again (the virtual hub: SIGKILL, then boot)."""
        self.hub.power_cut()

    def warp(self, ms: int) -> None:
        """Move the hub's clock ms ahead (Rig(warp=True); VirtualHub.warp says what moves)."""
        self.hub.warp(ms)

    def provision(self) -> None:
        to_flash(self.flash, {**files_for(self.depot, UID, self.devices, self.hub_config), **self.files})

    def provisioned(self) -> bool:
        """Whether the hub's flash holds its key. A rig folder of an older
        samband (its flash a plain folder) is converted to an image first: its
        key and journal are what the depot and the database know."""
        return rig_flash(self.flash, self.log).exists_file("/keys/hub.key")

    def start(self) -> Rig:
        build.build("vhub")
        if not self.provisioned():
            self.provision()
        else:  # the hub keeps its keys; configuration and extra files follow this run's rig
            to_flash(self.flash, {"/config/hub.json": json.dumps(self.hub_config).encode(), **self.files})
        env = dict(self.env)
        if self.bridge:
            env["SAMBAND_BLE_BRIDGE"] = "%s:%d" % tuple(self.bridge)
        self.hub = VirtualHub(self.flash, heap=self.heap, uid=UID.hex(), env=env, log=self.log,
                              romfs=build.romfs_path("vhub") if self.romfs else None, warp_file=self.warp_file)
        self.hub.netns = self.netns
        self.hub.start()
        self.running = True
        self._read_in_background()
        return self

    def _read_in_background(self) -> None:
        """Start the thread that reads the hub's console into lines and statuses
        (at start, and again when release_console gives the port back)."""
        self._stop.clear()
        self._reader = threading.Thread(target=self._read_console, daemon=True)
        self._reader.start()

    def _read_console(self) -> None:
        import serial
        try:
            ser = serial.Serial(self.port, 115200, timeout=0.1)
        except OSError:
            return
        buf = b""
        with ser:
            while not self._stop.is_set():
                try:
                    chunk = ser.read(ser.in_waiting or 1)
                except OSError:
                    break
                if not chunk:
                    continue
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.rstrip(b"\r").decode("utf-8", "replace")
                    self.lines.append(text)
                    s = parse_status(text)
                    if s is not None:
                        self.statuses.append(s)
                    if self.log:
                        self.log("hub | " + text)

    def release_console(self) -> AbstractContextManager[str]:
        """Stop reading the hub's console for a while (a context manager), so that
        another program - `samband status`, `console`, `selftest` - has it to itself:
        two readers of one serial port share its bytes. The hub itself goes on."""
        import contextlib

        @contextlib.contextmanager
        def released() -> Iterator[str]:
            self._stop.set()
            if self._reader:
                self._reader.join(5)
            try:
                yield self.port
            finally:
                self._read_in_background()
        return released()

    def wait_status(self, predicate: Callable[[dict[str, Any]], Any], timeout: float = 60,
                    what: str = "the hub's status to change") -> dict[str, Any]:
        """Wait until a STATUS line satisfies predicate; returns it."""
        end = time.monotonic() + timeout
        seen = max(0, len(self.statuses) - 1)  # the latest status and what comes after it
        while time.monotonic() < end:
            while seen < len(self.statuses):
                s = self.statuses[seen]
                seen += 1
                if predicate(s):
                    return s
            time.sleep(0.05)
        tail = "\n".join(self.lines[-15:])
        raise HubError(f"timed out after {timeout}s waiting for {what}; console tail:\n{tail}")

    def device_stats(self, status: dict[str, Any], addr: str) -> dict[str, Any] | None:
        for d in status.get("ble", {}).get("devices", []):
            if d["addr"] == addr:
                return d
        return None

    def stop(self) -> None:
        """Stop the hub and the console reader (again: nothing happens)."""
        self._stop.set()
        if self.hub and self.running:
            self.hub.stop()
        self.running = False
        if self._reader:
            self._reader.join(2)

    def readings(self, pending: bool = False) -> list[tuple[int, int, dict[int, Any] | None, str | None]]:
        """Open every sealed reading in the (stopped or running) hub's journal."""
        from samband.device.journal import readings
        return readings(self.hub.snapshot() if self.hub else self.flash, self.depot, UID, pending)

    def close(self) -> None:
        self.stop()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def rig_flash(folder: str | Path, log: Callable[[str], None] | None = None) -> Flash:
    """The rig's hub flash (a Flash), converting an older plain flash folder to an image."""
    f = Flash(folder)
    if not f.exists() and folder.is_dir() and any(p.name not in HOST_FILES for p in folder.iterdir()):
        n = f.convert()
        if log:
            log(f"rig: converted the flash folder {folder} to a flash image ({n} files; originals in pre-image/)")
    return f.ensure()


def status_interval_config(ms: int) -> dict[str, int]:
    """Hub config that makes the hub report its status every ms (tests want it often)."""
    return {"status_ms": ms}


def dump(status: dict[str, Any]) -> str:
    return json.dumps(status, indent=1, sort_keys=True)
