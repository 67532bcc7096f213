"""What a test run drives: the virtual hub, or a real board on a bench.

`select_target` turns pytest's --hub-port, --board and --bench into a
`Target`; `skip_reason` decides, from a test's markers, whether the target
can run it and, if not, says why in one line. Both are pure (the bench is
already parsed), so the rules are tested without a board. The power and
bearer-fault switches for a real bench are shell commands from the bench
file (uhubctl, a USB relay's tool, labgrid-client power...): the plugin runs
them, it does not know the hardware.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.rig.bench import Bench, BenchHub
    from samband.rig.hubs import Rig

# what a test may ask for with @pytest.mark.requires(...), and what provides it
CAPABILITIES = {
    "ble": "a BLE radio or the bridge",
    "ble-radio": "nRF52840 dongles running the emulated devices over the air ([[dongle]] in the bench)",
    "modem": "a cellular modem (the simulator on the virtual hub; a SIM7080G wired to the board)",
    "wifi": "Wi-Fi on the board",
    "ethernet": "Ethernet on the hub",
    "power": "switching the hub's power (the virtual hub's power cut; [power] in the bench)",
    "bearer-faults": "cutting the hub's uplink (a relay on the virtual rig; [bearer] in the bench)",
    "flash-snapshot": "reading the hub's flash while it runs (the virtual hub only)",
}
VIRTUAL_CAPS = frozenset({"ble", "modem", "ethernet", "power", "bearer-faults", "flash-snapshot"})
HOW_REAL = "pytest --hub-port PORT --board BOARD [--bench FILE] (docs/rig.md)"


class TargetError(SambandError, ValueError):
    """Options that select no target; one line."""


@dataclass(frozen=True)
class Target:
    board: str                 # a board name (hardware/boards)
    port: str = ""             # the real board's serial port; "" for the virtual hub
    info: dict = None          # its board.json
    bench: object = None       # a samband.rig.bench.Bench, or None
    bench_hub: object = None   # the bench's BenchHub for this board, or None

    @property
    def virtual(self) -> bool:
        return not self.port

    def describe(self) -> str:
        if self.virtual:
            return "the virtual hub"
        return f"{self.board} on {self.port}" + (f" (bench {self.bench.name})" if self.bench else "")

    def capabilities(self) -> frozenset[str]:
        if self.virtual:
            return VIRTUAL_CAPS
        feats = set(self.info.get("features", ()))
        caps = {f for f in ("ble", "wifi", "ethernet") if f in feats}
        if "lte-modem" in feats and self.bench_hub is not None and self.bench_hub.modem:
            caps.add("modem")
        if self.bench is not None:
            if self.bench.dongles:
                caps.add("ble-radio")
            if self.bench.power_on and self.bench_hub is not None:
                caps.add("power")
            if self.bench.bearer_cut:
                caps.add("bearer-faults")
        return frozenset(caps)

    def families(self) -> set[str]:
        """The names a board("...") marker may use for this target: its name, chip and port."""
        return {self.board, self.info.get("mcu", ""), self.info.get("port", "")} - {""}


def select_target(hub_port: str | None = None, board: str | None = None, bench: Bench | None = None,
                  load_board: Callable[[str], dict[str, Any]] | None = None,
                  board_names: Iterable[str] | None = None) -> Target:
    """The target for these options. load_board(name) -> board.json (default:
    samband.device.boards.load); board_names: the known boards."""
    if load_board is None or board_names is None:
        from samband.device import boards
        load_board = load_board or boards.load
        board_names = board_names if board_names is not None else boards.names()
    real = [b for b in board_names if b != "vhub"]
    if board is not None and board not in board_names:
        raise TargetError(f"--board {board}: no such board (known: {', '.join(board_names)})")
    if board == "vhub":
        if hub_port:
            raise TargetError("--board vhub is the virtual hub: leave --hub-port out")
        board = None
    if hub_port:
        bench_hub = bench.hub_for(port=hub_port) if bench else None
        if board is None:
            if bench_hub is None:
                raise TargetError(f"--hub-port {hub_port}: give --board ({', '.join(real)}) "
                                  f"or a --bench file that names this port")
            board = bench_hub.board
        elif bench_hub is not None and bench_hub.board != board:
            raise TargetError(f"--hub-port {hub_port} is the {bench_hub.board} in {bench.source}, not a {board}")
        if bench is not None and bench_hub is None:
            bench_hub = bench.hub_for(board=board)
            if bench_hub is not None and bench_hub.port != hub_port:
                bench_hub = None  # the board is elsewhere on the bench: this one is not switched by it
        return Target(board=board, port=hub_port, info=load_board(board), bench=bench, bench_hub=bench_hub)
    if board is not None:
        bench_hub = bench.hub_for(board=board) if bench else None
        if bench_hub is None:
            where = f" ({bench.source} has no {board})" if bench else " or a --bench file naming its port"
            raise TargetError(f"--board {board} needs --hub-port PORT{where}")
        return Target(board=board, port=bench_hub.port, info=load_board(board), bench=bench, bench_hub=bench_hub)
    if bench is not None and len(bench.hubs) == 1:
        h = bench.hubs[0]
        return Target(board=h.board, port=h.port, info=load_board(h.board), bench=bench, bench_hub=h)
    if bench is not None:
        raise TargetError(f"{bench.source} has {len(bench.hubs)} hubs: choose one with --board "
                          f"({', '.join(h.board for h in bench.hubs)}) or --hub-port")
    return Target(board="vhub", info=load_board("vhub"))


def skip_reason(target: Target, hil: bool = False, boards: Iterable[str] = (), requires: Iterable[str] = (),
                known_boards: frozenset[str] = frozenset()) -> str | None:
    """Why this target cannot run a test with these markers (None: it can).
    boards: the names given to board(...) markers; requires: requires(...)'s.
    Raises TargetError for a name no board or capability has (a typo would
    otherwise skip the test forever without anyone noticing)."""
    for r in requires:
        if r not in CAPABILITIES:
            raise TargetError(f"requires({r!r}): unknown; known: {', '.join(sorted(CAPABILITIES))}")
    for b in boards:
        if b not in known_boards:
            raise TargetError(f"board({b!r}): no board, chip or port has that name; known: "
                              f"{', '.join(sorted(known_boards))}")
    if hil and target.virtual:
        return f"hil: needs a real board and this run drives the virtual hub; run {HOW_REAL}"
    if boards and not target.families() & set(boards):
        return f"needs board {' or '.join(boards)}; this run drives {target.describe()}"
    missing = [r for r in requires if r not in target.capabilities()]
    if missing:
        return (f"needs {', '.join(missing)}, which {target.describe()} has not; "
                + "; ".join(f"{m}: {CAPABILITIES[m]}" for m in missing))
    return None


def known_board_names(load_board: Callable[[str], dict[str, Any]] | None = None,
                      board_names: Iterable[str] | None = None) -> frozenset[str]:
    """Every name a board(...) marker may use: board names, chips and ports."""
    from samband.device import boards
    load_board = load_board or boards.load
    out = set()
    for n in board_names if board_names is not None else boards.names():
        b = load_board(n)
        out |= {n, b.get("mcu", ""), b.get("port", "")}
    return frozenset(out - {""})


# ---------------------------------------------------------------- switches on a real bench

class CommandError(SambandError):
    pass


def run_command(template: str, values: dict[str, Any], what: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a bench command (a template with {usb_hub} {usb_port} {port} {board}); one-line error if it fails."""
    cmd = template.format(**values)
    try:
        p = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise CommandError(f"{what}: {shlex.split(cmd)[0]} is not installed (bench command {cmd!r})") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"{what}: {cmd!r} did not finish within {timeout} s") from None
    if p.returncode != 0:
        last = (p.stderr.strip() or p.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise CommandError(f"{what}: {cmd!r} exited {p.returncode}: {last[0]}")
    return p


class BenchPower:
    """The bench's per-port power for one hub (the [power] commands)."""

    def __init__(self, bench: Bench, bench_hub: BenchHub, runner: Callable[..., Any] = run_command,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.bench = bench
        self.hub = bench_hub
        self._run = runner
        self._sleep = sleep
        self.cuts = 0

    def _values(self) -> dict[str, Any]:
        h = self.hub
        return {"usb_hub": h.usb_hub, "usb_port": h.usb_port, "port": h.port, "board": h.board}

    def off(self) -> None:
        self._run(self.bench.power_off, self._values(), f"power off {self.hub.board}")

    def on(self) -> None:
        self._run(self.bench.power_on, self._values(), f"power on {self.hub.board}")
        self._sleep(self.bench.settle_s)  # the USB serial port comes back after enumeration

    def cut(self, rig: Rig | None = None) -> None:
        self.off()
        self.on()
        self.cuts += 1


class VirtualPower:
    """The virtual hub's power cut (SIGKILL mid-whatever, then power on again)."""

    def __init__(self) -> None:
        self.cuts = 0

    def cut(self, rig: Rig) -> None:
        rig.hub.power_cut()
        self.cuts += 1


class BenchBearer:
    """Cut and restore the hubs' uplink with the bench's [bearer] commands."""

    def __init__(self, bench: Bench, runner: Callable[..., Any] = run_command) -> None:
        self.bench = bench
        self._run = runner

    def cut(self) -> None:
        self._run(self.bench.bearer_cut, {}, "bearer cut")

    def up(self) -> None:
        self._run(self.bench.bearer_up, {}, "bearer up")
