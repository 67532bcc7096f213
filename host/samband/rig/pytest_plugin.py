"""pytest plugin for Samband rigs (docs/rig.md), registered as the `samband`
entry point in pytest11: any project with samband installed gets it.

A test asks for parts of a rig and gets them for the target this run drives:
the virtual hub by default, a real board with --hub-port/--board (and the
bench's switches with --bench FILE). Fixtures are factories, made only when a
test asks for them, so a test that uses none of them pays nothing; the
plugin itself imports no heavy module until a fixture runs.

Fixtures:
    rig_target    the Target: board, port, bench, capabilities()
    rig_devices   rig_devices(specs) -> a started BleBridge with emulated devices
                  (bumble: a virtual link, or the bench's nRF52840 dongles); .where for a hub
    rig_hub       rig_hub(devices=..., bridge=..., hub_config=...) -> a Rig (virtual hub) or
                  BoardRig (real board): start()/with, wait_status, power_cut, readings
    rig_power     .cut(rig): the virtual hub's power cut, or the bench's [power] commands
    rig_broker    an unstarted Mosquitto Broker (add_hub, then start)
    rig_bearer    rig_bearer(broker) -> .host, .port for the hub's uplink; .cut() / .up()
    rig_receiver  rig_receiver(rig, broker, store) -> a started receiver for the rig's depot

Markers: hil (needs a real board), board("esp32", ...) (a board name, chip or
port), requires("modem", ...) (samband.rig.target.CAPABILITIES). A test the
target cannot run is skipped with the reason; an unknown name fails it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from samband.bridge.server import BleBridge
    from samband.receiver.store import Store
    from samband.receiver.subscriber import Receiver
    from samband.rig.broker import Broker
    from samband.rig.hubs import Rig
    from samband.rig.target import BenchPower, Target, VirtualPower

MARKERS = (
    "hil: needs real hardware (a board on --hub-port or from --bench); skipped on the virtual hub",
    "board(*names): runs only on these boards (board name, chip such as esp32, or port such as rp2)",
    "requires(*capabilities): runs only where the rig has them (samband.rig.target.CAPABILITIES)",
)
_TARGET = pytest.StashKey()
_KNOWN = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("samband", "Samband rigs (virtual or real hubs; docs/rig.md)")
    g.addoption("--hub-port", metavar="PORT", default=None,
                help="drive the real board on this serial port instead of the virtual hub")
    g.addoption("--board", metavar="BOARD", default=None,
                help="the real board's name (hardware/boards: esp32-devkit, picow, ...)")
    g.addoption("--bench", metavar="FILE", default=None,
                help="a bench file (TOML) describing the real rig: ports, power switching, dongles, modem")


def pytest_configure(config: pytest.Config) -> None:
    for m in MARKERS:
        config.addinivalue_line("markers", m)
    if config.getoption("hub_port") or config.getoption("board") or config.getoption("bench"):
        target(config)  # a wrong option or bench file stops the run at once, in one line


def target(config: pytest.Config) -> Target:
    """The run's Target, chosen once (pytest.UsageError, one line, if the options select none)."""
    t = config.stash.get(_TARGET, None)
    if t is None:
        from samband.errors import SambandError
        from samband.rig.bench import load_bench
        from samband.rig.target import select_target
        try:
            path = config.getoption("bench")
            bench = load_bench(path) if path else None
            t = select_target(config.getoption("hub_port"), config.getoption("board"), bench)
        except SambandError as e:
            raise pytest.UsageError(str(e)) from None
        config.stash[_TARGET] = t
    return t


def _marks(item: pytest.Item) -> tuple[bool, list[str], list[str]]:
    hil = item.get_closest_marker("hil") is not None
    boards = [a for m in item.iter_markers("board") for a in m.args]
    requires = [a for m in item.iter_markers("requires") for a in m.args]
    return hil, boards, requires


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (before any fixture is set up) a test the target cannot run."""
    hil, boards, requires = _marks(item)
    if not (hil or boards or requires):
        return
    from samband.rig.target import TargetError, known_board_names, skip_reason
    config = item.config
    if _KNOWN not in config.stash:
        config.stash[_KNOWN] = known_board_names()
    try:
        why, wrong = skip_reason(target(config), hil, boards, requires, config.stash[_KNOWN]), None
    except TargetError as e:
        why, wrong = None, str(e)
    if wrong:
        pytest.fail(wrong, pytrace=False)
    if why:
        pytest.skip(why)


@pytest.fixture(scope="session")
def rig_target(request: pytest.FixtureRequest) -> Target:
    """What this run drives (samband.rig.target.Target)."""
    return target(request.config)


@pytest.fixture
def rig_devices(rig_target: Target) -> Iterator[Callable[..., BleBridge]]:
    """rig_devices(specs, **kw) -> a started BleBridge with these emulated devices
    (specs as for samband.bridge.sim.make: {"kind": "glucose", "address": "C0:..", ...}).
    On a bench each device goes on one of its dongles, over the air."""
    from samband.bridge.server import BleBridge
    started = []

    def make(specs: list[Any], **kw: Any) -> BleBridge:
        if not rig_target.virtual:
            dongles = rig_target.bench.dongles if rig_target.bench else ()
            if len(dongles) < len(specs):
                pytest.skip(f"needs {len(specs)} BLE dongles for its emulated devices; "
                            f"{'the bench has ' + str(len(dongles)) if rig_target.bench else 'no --bench file'}")
            kw.setdefault("transports", list(dongles[:len(specs)]))
            kw.setdefault("central", False)  # the board's own radio is the central
        b = BleBridge(devices=specs, **kw)
        b.where = b.start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


def _power(t: Target) -> VirtualPower | BenchPower | None:
    from samband.rig.target import BenchPower, VirtualPower
    if t.virtual:
        return VirtualPower()
    if "power" in t.capabilities():
        return BenchPower(t.bench, t.bench_hub)
    return None


@pytest.fixture
def rig_hub(rig_target: Target, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """rig_hub(devices=(), bridge=None, root=None, **kw) -> a provisioned hub's rig, not
    yet started (start() or `with`): samband.rig.hubs.Rig on the virtual hub (kw as
    for Rig: hub_config, heap, romfs, files, env, ...), BoardRig on a real board.
    bridge: a rig_devices bridge (or a (host, port)). Closed after the test."""
    made = []

    def make(devices: Iterable[dict[str, Any]] = (), bridge: BleBridge | None = None,
             root: str | Path | None = None, **kw: Any) -> Rig:
        root = root or tmp_path / f"rig{len(made)}"
        if rig_target.virtual:
            from samband.rig.hubs import Rig
            where = getattr(bridge, "where", bridge)
            r = Rig(root, devices=devices, bridge=where, **kw)
        else:
            from samband.rig.board import BoardRig
            r = BoardRig(rig_target, power=_power(rig_target), root=root, devices=devices, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def rig_power(rig_target: Target) -> VirtualPower | BenchPower:
    """.cut(rig): pull the hub's plug and power it on again."""
    p = _power(rig_target)
    if p is None:
        pytest.skip(f"needs power switching; {rig_target.describe()} has no [power] in a bench file")
    return p


@pytest.fixture
def rig_broker(rig_target: Target, tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto broker with TLS and per-hub logins (samband.rig.broker.Broker), not
    started: add_hub(uid) first, then start(). On a real bench it listens on, and
    its certificate names, the bench's broker_host (the boards dial it over Wi-Fi)."""
    from samband.rig.broker import Broker
    bench_host = rig_target.bench.broker_host if rig_target.bench and not rig_target.virtual else ""
    b = Broker(tmp_path / "broker", hostname=bench_host or "localhost", bind=bench_host or "127.0.0.1")
    yield b
    b.stop()


class _RelayBearer:
    """The virtual rig's uplink: a TCP relay in front of the broker that can be cut."""

    def __init__(self, broker: Broker) -> None:
        from samband.rig.relay import Relay
        self.relay = Relay(broker.port)
        self.host = "localhost"
        self.port = self.relay.port
        self.cuts = 0

    def cut(self) -> None:
        self.relay.cut()
        self.cuts += 1

    def up(self) -> None:
        self.relay.up()

    def close(self) -> None:
        self.relay.close()


@pytest.fixture
def rig_bearer(rig_target: Target) -> Iterator[Callable[[Broker], Any]]:
    """rig_bearer(started_broker) -> where the hub's uplink dials (.host, .port) and
    .cut()/.up() for its network: a relay on the virtual rig, the bench's [bearer]
    commands on a real one."""
    made = []

    def make(broker: Broker) -> Any:
        if rig_target.virtual:
            b = _RelayBearer(broker)
            made.append(b)
            return b
        if "bearer-faults" not in rig_target.capabilities():
            pytest.skip(f"needs bearer faults; {rig_target.describe()} has no [bearer] in a bench file")
        from samband.rig.target import BenchBearer
        b = BenchBearer(rig_target.bench)
        b.host, b.port = rig_target.bench.broker_host or "localhost", broker.port
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture
def rig_receiver() -> Iterator[Callable[[Rig, Broker, Store], Receiver]]:
    """rig_receiver(rig, broker, store) -> a started receiver that opens the rig's hub's
    records (its depot) into store; stopped after the test unless stopped before."""
    from samband.receiver.ingest import Ingest
    from samband.receiver.subscriber import Receiver
    from samband.rig.broker import RECEIVER_USER
    started = []

    def make(rig: Rig, broker: Broker, store: Store) -> Receiver:
        rx = Receiver(Ingest(rig.depot.opener(), store, None), "localhost", broker.port, broker.ca_pem,
                      RECEIVER_USER, broker.users[RECEIVER_USER]).start()
        started.append(rx)
        return rx

    yield make
    for rx in started:
        if not getattr(rx, "_stop", True):  # the test may have stopped it (a receiver kill)
            rx.stop()
