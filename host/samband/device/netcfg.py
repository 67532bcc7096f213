"""The hub's bearers as `samband provision` sets them: options checked one by one
(each refusal one line), merged into the "bearers" list of /config/hub.json that
the firmware's `port.bearers(config)` reads (docs/bearers.md), and the settings
diff shown on re-provisioning. Pure functions over dicts; the secrets they read
from files go into a separate table that is only ever sealed (vault.py)."""

from __future__ import annotations

import copy
import json
import re
from argparse import Namespace
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from samband.errors import SambandError

SEALED = "_sealed"  # firmware/hub/vault.py fills "password_sealed": NAME in as "password"
COST = {"lan": 0, "hostnet": 0, "wifi": 1, "cellular": 2}  # default order, cheapest first
KINDS = ("wifi", "lan", "cellular")  # what provisioning manages; other entries are kept as they are
MODEMS = ("bg96", "sim7080g")  # firmware/hub/bearers/modems/
_APN_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")


def read_secret(path: str, what: str, lo: int, hi: int, check: Callable[[str], None] | None = None,
                chars: str = "ascii") -> str:
    """A secret from a file (never from the command line, where ps and shell history see
    it): one line, its line end dropped; missing, empty or out-of-bounds files refused.
    chars: "ascii" (printable ASCII: a WPA2 passphrase), "at" (the same without '"',
    which would end the quoted AT argument), "utf8" (any text without control
    characters: an MQTT password)."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise SambandError(f"{what} {path}: {e.strerror}") from None
    if data.endswith(b"\n"):
        data = data[:-1]
    if data.endswith(b"\r"):
        data = data[:-1]
    if not data:
        raise SambandError(f"{what} {path}: the file is empty")
    if b"\n" in data or b"\r" in data:
        raise SambandError(f"{what} {path}: more than one line; the file holds the secret alone")
    try:
        text = data.decode("utf-8" if chars == "utf8" else "ascii")
    except UnicodeDecodeError:
        text = None
    if chars == "utf8":
        if text is None or any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise SambandError(f"{what} {path}: not UTF-8 text without control characters")
    elif text is None or any(not " " <= c <= "~" for c in text):
        raise SambandError(f"{what} {path}: only printable ASCII characters")
    elif chars == "at" and '"' in text:
        raise SambandError(f"{what} {path}: printable ASCII without '\"' (it is sent quoted to the modem)")
    if not lo <= len(text) <= hi:
        raise SambandError(f"{what} {path}: {len(text)} characters; want {lo} to {hi}")
    if check:
        check(text)
    return text


def _pin(text: str) -> None:
    if not text.isdigit():
        raise SambandError("--sim-pin-file: a SIM PIN is 4 to 8 digits")


def parse_wifi(pairs: Iterable[tuple[str, str]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """[(ssid, password file)] -> (networks in the order tried, {secret name: passphrase})."""
    nets, secrets, seen = [], {}, set()
    for ssid, path in pairs:
        n = len(ssid.encode())
        if not 1 <= n <= 32:
            raise SambandError(f"--wifi {ssid!r}: an SSID is 1 to 32 bytes, this one is {n}")
        if ssid in seen:
            raise SambandError(f"--wifi {ssid!r} is given twice: give each network once")
        seen.add(ssid)
        # WPA2-Personal: a passphrase of 8 to 63 printable ASCII characters
        pw = read_secret(path, f"--wifi {ssid!r} password file", 8, 63)
        name = "wifi/" + ssid
        nets.append({"ssid": ssid, "password" + SEALED: name})
        secrets[name] = pw
    return nets, secrets


def parse_apn(text: str) -> str:
    """An APN network identifier (3GPP TS 23.003 9.1.1): dot-separated labels of letters,
    digits and hyphens, at most 100 characters; the operator part (.gprs) is the network's."""
    labels = text.split(".") if text else []
    if not labels or len(text) > 100 or not all(_APN_LABEL.match(x) for x in labels) \
            or text.lower().endswith(".gprs"):
        raise SambandError(f"--apn {text!r}: want an APN such as internet or health.example.com "
                           f"(letters, digits, '-' and '.', at most 100 characters)")
    return text


def parse_user(text: str) -> str:
    if not 1 <= len(text) <= 64 or any(not " " <= c <= "~" or c == '"' for c in text):
        raise SambandError(f"--apn-user {text!r}: 1 to 64 printable ASCII characters without '\"'")
    return text


def board_bearers(board: dict[str, Any]) -> set[str]:
    """The bearer kinds a board can run, from its board.json (what its port's bearers() builds)."""
    out = set()
    if "wifi" in board["features"]:
        out.add("wifi")
    if board.get("ethernet"):  # the PHY and its pins: network.LAN needs them
        out.add("lan")
    if board["pins"].get("modem_uart") or "modem-sim" in board["features"]:
        out.add("cellular")
    return out


def _refuse_kind(board: dict[str, Any], kind: str, option: str, all_boards: Iterable[dict[str, Any]]) -> NoReturn:
    ok = [b["name"] for b in all_boards if kind in board_bearers(b)]
    what = {"wifi": "no Wi-Fi", "lan": "no Ethernet PHY in its board.json", "cellular": "no modem"}[kind]
    raise SambandError(f"{option}: board {board['name']} has {what}; boards that have: {', '.join(ok) or 'none'}")


def _find(bearers: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    for b in bearers:
        if b.get("kind") == kind:
            return b
    return None


def _place(bearers: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    """A new bearer goes before the first dearer one: cheapest first unless told otherwise."""
    rank = COST.get(entry["kind"], 1)
    for i, b in enumerate(bearers):
        if COST.get(b.get("kind"), 1) > rank:
            bearers.insert(i, entry)
            return
    bearers.append(entry)


def _unique_name(bearers: list[dict[str, Any]], base: str) -> str:
    names = {b.get("name") for b in bearers}
    name, i = base, 1
    while name in names:
        i += 1
        name = f"{base}{i}"
    return name


def apply(cfg: dict[str, Any], secrets: dict[str, str], board: dict[str, Any], opts: Namespace,
          all_boards: Iterable[dict[str, Any]] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """The hub config and secrets table with the bearer options applied; everything the
    options do not mention is kept. opts: wifi [(ssid, file)], no_wifi, ethernet
    ("on"/"off"/None), apn, apn_user, apn_password_file, apn_auth, sim_pin_file,
    modem, no_cellular, bearer_order ("a,b,c")."""
    cfg, secrets = copy.deepcopy(cfg), dict(secrets)
    bearers = [b for b in cfg.get("bearers") or () if isinstance(b, dict)]
    can = board_bearers(board)

    if opts.wifi:
        if "wifi" not in can:
            _refuse_kind(board, "wifi", "--wifi", all_boards)
        nets, new = parse_wifi(opts.wifi)
        secrets.update(new)
        b = _find(bearers, "wifi")
        if b is None:
            _place(bearers, {"kind": "wifi", "name": _unique_name(bearers, "wifi"), "networks": nets})
        else:
            b.pop("ssid", None)
            b.pop("password", None)
            b["networks"] = nets  # the list given is the list: in this order, nothing else
    elif opts.no_wifi:
        bearers = [b for b in bearers if b.get("kind") != "wifi"]

    if opts.ethernet == "on":
        if "lan" not in can:
            _refuse_kind(board, "lan", "--ethernet on", all_boards)
        if _find(bearers, "lan") is None:
            _place(bearers, {"kind": "lan", "name": _unique_name(bearers, "lan")})
    elif opts.ethernet == "off":
        bearers = [b for b in bearers if b.get("kind") != "lan"]

    cell_opts = [o for o, v in (("--apn-user", opts.apn_user), ("--apn-password-file", opts.apn_password_file),
                                ("--apn-auth", opts.apn_auth), ("--sim-pin-file", opts.sim_pin_file),
                                ("--modem", opts.modem)) if v]
    if opts.no_cellular:
        if opts.apn or cell_opts:
            raise SambandError(f"--no-cellular with {(['--apn'] if opts.apn else cell_opts)[0]}: choose one")
        bearers = [b for b in bearers if b.get("kind") != "cellular"]
    elif opts.apn or cell_opts:
        if "cellular" not in can:
            _refuse_kind(board, "cellular", opts.apn and "--apn" or cell_opts[0], all_boards)
        b = _find(bearers, "cellular")
        if b is None:
            if not opts.apn:
                raise SambandError(f"{cell_opts[0]} needs --apn: the hub has no cellular bearer yet")
            b = {"kind": "cellular", "name": _unique_name(bearers, "cellular")}
            _place(bearers, b)
        if opts.apn:
            b["apn"] = parse_apn(opts.apn)
        if opts.apn_user:
            b["user"] = parse_user(opts.apn_user)
        if opts.apn_auth:
            b["auth"] = opts.apn_auth
        if opts.modem:
            b["modem"] = opts.modem
        if opts.apn_password_file:
            name = b["name"] + "/password"
            secrets[name] = read_secret(opts.apn_password_file, "--apn-password-file", 1, 64, chars="at")
            b["password" + SEALED] = name
        if opts.sim_pin_file:
            name = b["name"] + "/pin"
            secrets[name] = read_secret(opts.sim_pin_file, "--sim-pin-file", 4, 8, _pin, chars="at")
            b["pin" + SEALED] = name

    if opts.bearer_order is not None:
        bearers = order(bearers, opts.bearer_order)
    if board.get("port") == "esp32":
        _ppp_auth(bearers)
    if bearers:
        cfg["bearers"] = bearers
    else:
        cfg.pop("bearers", None)
    return cfg, secrets


def _ppp_auth(bearers: list[dict[str, Any]]) -> None:
    """An ESP32 whose one IP bearer is cellular carries it over network.PPP (firmware
    hub/ports/esp32.py, docs/bearers.md), which takes PAP or CHAP, not "any"."""
    if {b.get("kind") for b in bearers} & {"wifi", "lan"}:
        return
    for b in bearers:
        if (b.get("kind") == "cellular" and b.get("auth") == "any" and b.get("user") is not None
                and b.get("data") != "sockets"):
            raise SambandError("--apn-auth any: this ESP32's one IP bearer is cellular, carried by "
                               "network.PPP, which takes pap or chap: choose one")


def order(bearers: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The bearers in the order given (names, cheapest first): every bearer exactly once."""
    names = [n.strip() for n in text.split(",")]
    by_name = {b.get("name"): b for b in bearers}
    have = ", ".join(by_name) or "none"
    for i, n in enumerate(names):
        if n not in by_name:
            raise SambandError(f"--bearer-order: no bearer named {n!r} is given (bearers: {have})")
        if n in names[:i]:
            raise SambandError(f"--bearer-order: {n} is named twice")
    left = [n for n in by_name if n not in names]
    if left:
        raise SambandError(f"--bearer-order leaves out {left[0]}: name every bearer, cheapest first ({have})")
    return [by_name[n] for n in names]


def referenced(obj: object, out: list[str] | None = None) -> list[str]:
    """The secret names a config refers to (as the firmware's vault.fill finds them)."""
    out = [] if out is None else out
    if isinstance(obj, list):
        for v in obj:
            referenced(v, out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k.endswith(SEALED) and isinstance(v, str):
                out.append(v)
            else:
                referenced(v, out)
    return out


def _flat(obj: object, prefix: str, out: dict[str, str]) -> dict[str, str]:
    if isinstance(obj, dict):
        for k in sorted(obj):
            if not k.endswith(SEALED):
                _flat(obj[k], f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(obj, list) and prefix == "bearers":
        for i, b in enumerate(obj):
            _flat(b, f"bearers[{b.get('name', i) if isinstance(b, dict) else i}]", out)
    elif isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        for i, x in enumerate(obj):
            _flat(x, f"{prefix}[{i}]", out)
    else:
        out[prefix] = json.dumps(obj, ensure_ascii=False)
    return out


def settings(cfg: dict[str, Any], devices: list[dict[str, Any]]) -> dict[str, str]:
    """A flat {setting: value text} view of what the hub is told, secrets left out."""
    out = _flat({k: v for k, v in cfg.items()}, "", {})
    if cfg.get("bearers"):
        out["bearer order"] = ", ".join(str(b.get("name")) for b in cfg["bearers"] if isinstance(b, dict))
    for d in devices:
        out[f"device {d['addr']}"] = d["kind"]
    return out


def diff(old_cfg: dict[str, Any], old_devices: list[dict[str, Any]], old_secrets: dict[str, Any],
         new_cfg: dict[str, Any], new_devices: list[dict[str, Any]], new_secrets: dict[str, Any]) -> list[str]:
    """Lines saying what changes: '+ key = value', '~ key: old -> new', '- key (was v)';
    a secret only as (new), (changed), (kept) or (removed), never its value."""
    a, b = settings(old_cfg, old_devices), settings(new_cfg, new_devices)
    lines = []
    for k in sorted(set(a) | set(b)):
        if k not in a:
            lines.append(f"+ {k} = {b[k]}")
        elif k not in b:
            lines.append(f"- {k} (was {a[k]})")
        elif a[k] != b[k]:
            lines.append(f"~ {k}: {a[k]} -> {b[k]}")
    same = sum(1 for k in a if k in b and a[k] == b[k])
    if same:
        lines.append(f"= {same} setting(s) unchanged")
    for n in sorted(set(old_secrets) | set(new_secrets)):
        if n not in old_secrets:
            what = "(new)"
        elif n not in new_secrets:
            what = "(removed)"
        else:
            what = "(kept)" if old_secrets[n] == new_secrets[n] else "(changed)"
        lines.append(f"  secret {n}: {what}")
    return lines
