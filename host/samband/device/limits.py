"""Per-patient alarm limits for one hub, authenticated by the depot's authority key.

Why here and signed: the hub takes limits only in a config it can verify
(firmware/hub/limits.py), made with the same authority key and the same
construction as its receiver-key config, so a technician's laptop without
the depot's authority.key cannot widen a patient's limits. This module
turns `--set glucose:low=70,high=250` into rules, numbers the config (a
serial above every one issued before: the hub refuses a replayed or older
one), tags it, and records what was issued in the depot (limits.json).

Delivery: the config goes to the hub's flash as /keys/limits.new; the hub
verifies and takes it at its next boot (or refuses it, keeping the limits
it has, and says so in its status: `limits` and `problems`)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import nacl.bindings as nb

from hub import limits as fw
from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.device.depot import Depot

# One limit: (MDC codes, UCUM unit, low or None, high or None), as hub.limits checks them.
Rule = tuple[tuple[int, ...], str, Any, Any]

NEW = "/keys/limits.new"

# name -> (MDC codes, UCUM unit): what a rule applies to, in the units the devices send.
GLUCOSE = (160184, 160188, 160192, 160196, 160200, 160204, 160208, 160212, 160020)
TEMPERATURE = (150364, 188452, 188428, 188432, 188456, 188424, 188420, 188448, 150392)
MEASURES = {
    "glucose": (GLUCOSE, "mg/dL"),
    "glucose_mmol": (GLUCOSE, "mmol/L"),
    "spo2": ((150456,), "%"),
    "pulse": ((147842, 149530, 149546), "/min"),  # heart rate (strap), oximeter, cuff
    "systolic": ((150021,), "mm[Hg]"),
    "diastolic": ((150022,), "mm[Hg]"),
    "map": ((150023,), "mm[Hg]"),
    "temperature": (TEMPERATURE, "Cel"),
    "temperature_f": (TEMPERATURE, "[degF]"),
    "weight": ((188736,), "kg"),
}


def _number(text: str, what: str) -> int | float:
    try:
        v = float(text)
    except ValueError:
        raise SambandError(f"{what}: {text!r} is not a number") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise SambandError(f"{what}: {text!r} is not a number")
    return int(v) if v == int(v) else v


def parse_spec(spec: str) -> Rule:
    """'glucose:low=70,high=250' -> (codes, unit, low, high); SambandError names what is wrong."""
    name, sep, rest = (spec or "").partition(":")
    name = name.strip().lower()
    if name not in MEASURES or not sep:
        raise SambandError(f"--set {spec!r}: want MEASURE:low=N,high=N with MEASURE one of "
                           f"{', '.join(MEASURES)} (e.g. glucose:low=70,high=250)")
    got = {}
    for part in rest.split(","):
        k, eq, v = part.partition("=")
        k = k.strip().lower()
        if k not in ("low", "high") or not eq or k in got:
            raise SambandError(f"--set {spec!r}: want low=N and/or high=N, each once")
        got[k] = _number(v.strip(), f"--set {spec!r}: {k}")
    codes, unit = MEASURES[name]
    rule = (codes, unit, got.get("low"), got.get("high"))
    try:
        fw.check_rules([rule])
    except fw.LimitsError as e:
        raise SambandError(f"--set {spec!r}: {e}") from None
    return rule


def parse_specs(specs: Iterable[str] | None) -> list[Rule]:
    rules = [parse_spec(s) for s in specs or ()]
    if not rules:
        raise SambandError("say which limits: --set glucose:low=70,high=250 (one --set per measure)")
    seen = set()
    for codes, unit, _, _ in rules:
        if (codes, unit) in seen:
            raise SambandError(f"two --set for the same measure ({unit}): give each once")
        seen.add((codes, unit))
    return rules


def tag(authority_secret: bytes, hub_public: bytes, hub_id: bytes, body: bytes) -> bytes:
    """The 16-byte authenticator the hub checks (hub.seal.Keys.authentic with hub.limits.LIMITS_LABEL)."""
    kcfg = nb.crypto_box_beforenm(hub_public, authority_secret)
    msg = fw.LIMITS_LABEL + bytes((len(hub_id),)) + bytes(hub_id) + bytes(body)
    return hmac.new(kcfg, msg, hashlib.sha256).digest()[:16]


def issued(depot: Depot) -> dict[str, Any]:
    """{hub id hex: {"serial": n, "rules": [...], "at": unix seconds}}: what this depot has issued."""
    return depot.load_json("limits.json")


def make(depot: Depot, hub_id: bytes, rules: list[Rule], now: float | None = None) -> tuple[int, bytes]:
    """(serial, config bytes) for hub_id, recorded in the depot. Refused without the depot's
    authority key (never made here: a new one would not be the hub's) or for a hub the depot
    did not provision."""
    hub = depot.hubs().get(bytes(hub_id).hex())
    if hub is None:
        raise SambandError(f"hub {bytes(hub_id).hex()} is not in the depot {depot.path}: limits are made "
                           f"with the depot that provisioned it")
    authority = depot.authority(create=False)
    done = issued(depot)
    last = done.get(bytes(hub_id).hex(), {}).get("serial", 0)
    # above every serial issued here, and above a clock's seconds so that a depot restored from an
    # older backup still issues a config the hub takes
    serial = max(last + 1, int(now if now is not None else time.time()))
    try:
        body = fw.body(serial, rules)
    except fw.LimitsError as e:
        raise SambandError(str(e)) from None
    blob = body + tag(authority.secret, bytes.fromhex(hub["public"]), bytes(hub_id), body)
    done[bytes(hub_id).hex()] = {"serial": serial, "at": int(time.time()),
                                 "rules": [[list(c), u, lo, hi] for c, u, lo, hi in rules]}
    depot.save_json("limits.json", done)
    return serial, blob


def describe(rules: Iterable[Rule]) -> list[str]:
    """The rules in words, one per line, for the technician."""
    names = {(c, u): n for n, (c, u) in MEASURES.items()}
    out = []
    for codes, unit, lo, hi in rules:
        bounds = " and ".join(s for s in (f"below {lo}" if lo is not None else "",
                                          f"above {hi}" if hi is not None else "") if s)
        out.append(f"{names.get((tuple(codes), unit), '?')}: alarm {bounds} {unit}")
    return out


_UID = "from hub import board, ports\nprint(''.join('%02x' % b for b in ports.load(board.load()).unique_id()))"


def hub_uid(port: str) -> bytes:
    """The id the hub's firmware seals and verifies under (its port's unique_id: machine.unique_id()
    on a board, the virtual hub's configured one on the unix port)."""
    from samband.device.transport import Hub
    with Hub(port) as h:
        out = h.exec(_UID).strip().splitlines()
    try:
        return bytes.fromhex(out[-1])
    except (IndexError, ValueError):
        raise SambandError(f"{port}: the hub did not say its id ({out!r}): is the Samband firmware on it "
                           f"(samband deploy)?") from None


def to_port(port: str, blob: bytes) -> None:
    """Write the config onto the hub at port and restart its application, which takes it as it
    boots. Why restart here: writing goes through the raw REPL, which stops the application, and
    a hub left at its REPL collects nothing until someone resets it. The port is handed back only
    once the hub says it is rebooting (as samband deploy does: bytes sent before that would reach
    the interpreter going down)."""
    from mpremote.transport import TransportError

    from samband.device.deploy import RESTART_S, RESTARTED
    from samband.device.transport import Hub
    with Hub(port) as h:
        h.exec("import os\ntry:\n os.mkdir('/keys')\nexcept OSError:\n pass")
        h.exec(f"f = open({NEW!r}, 'wb')\nf.write({bytes(blob)!r})\nf.close()")
        t, h.t = h.t, None  # the restart below replaces the usual leaving of the raw REPL
    try:
        t.exit_raw_repl()
        t.serial.write(b"\x04")
        t.serial.flush()
        t.read_until(1, RESTARTED, timeout=RESTART_S, timeout_overall=RESTART_S)
    except TransportError as e:
        raise SambandError(f"{port}: the limits are on the hub, but it did not restart ({e}): reset it") from None
    finally:
        t.close()
