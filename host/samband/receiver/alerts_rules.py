"""The alerts rules file (TOML): thresholds, responder groups, channels, routes.

Pure: text in, a frozen `Rules` out, or an `AlertRulesError` whose message
is one line naming the file and the key (`rules.toml: groups.nurse.channels[1]:
a webhook needs url`), so that a typo in a file edited at 3 a.m. is found
at start, not when the first alarm is due. Nothing is defaulted silently
that changes who is told: every route names groups that exist, and every
channel names what it needs (a topic, a URL, recipients). The format is in
docs/alerts.md.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from samband.errors import SambandError

KINDS = ("clinical", "device-silent", "hub-offline", "journal-filling", "battery-low", "clock-not-set",
         "refusals", "quarantine")
SEVERITIES = ("critical", "high", "warning")
# The severity of each kind; a clinical alert is an alarm reading (the hub's
# limits said so), a hub offline means nothing at all arrives from a patient.
SEVERITY = {"clinical": "critical", "hub-offline": "high", "refusals": "high", "quarantine": "high",
            "device-silent": "warning",
            "journal-filling": "warning", "battery-low": "warning", "clock-not-set": "warning"}
CHANNELS = ("mqtt", "webhook", "email")


class AlertRulesError(SambandError):
    pass


@dataclass(frozen=True)
class Thresholds:
    poll_s: float = 0.5
    clear_after_s: float = 60.0  # a cause must stay gone this long before its alert clears (no flapping)
    hub_offline_s: float = 300.0
    battery_low_pct: float = 20.0
    battery_clear_pct: float = 25.0
    journal_capacity: int = 0  # records a hub's journal holds; 0 = no journal-filling alerts
    journal_fill_pct: float = 70.0
    journal_clear_pct: float = 60.0
    refusals: int = 5
    refusals_window_s: float = 600.0
    history_s: float = 86400.0  # readings looked at again at start, to rebuild what is current


@dataclass(frozen=True)
class Channel:
    type: str
    target: str  # topic, URL, or comma-separated recipients
    timeout_s: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class Group:
    name: str
    ack_timeout_s: float
    channels: tuple


@dataclass(frozen=True)
class Route:
    kinds: tuple  # ("*",) = any
    severities: tuple
    groups: tuple
    stop_on_clear: bool

    def matches(self, kind: str, severity: str) -> bool:
        return ("*" in self.kinds or kind in self.kinds) and (not self.severities or severity in self.severities)


@dataclass(frozen=True)
class Rules:
    thresholds: Thresholds
    groups: dict
    routes: tuple
    patients: dict = field(default_factory=dict)  # hub hex -> patient
    silence_devices: dict = field(default_factory=dict)  # device address -> seconds
    silence_codes: dict = field(default_factory=dict)  # MDC code -> seconds
    mqtt: dict = field(default_factory=dict)
    smtp: dict = field(default_factory=dict)

    def route(self, kind: str, severity: str) -> Route | None:
        """The first route for this kind and severity, or None."""
        for r in self.routes:
            if r.matches(kind, severity):
                return r
        return None

    def expected_interval(self, device: str, mdc: int) -> float | None:
        return self.silence_devices.get(device) or self.silence_codes.get(mdc)


def load(path: str | Path) -> Rules:
    """Rules from a file; AlertRulesError (one line) when it is missing or wrong."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as e:
        raise AlertRulesError(f"{path}: cannot read the rules file: {e.strerror}") from None
    except UnicodeDecodeError:
        raise AlertRulesError(f"{path}: not UTF-8 text") from None
    return parse(text, str(path))


def parse(text: str, name: str = "rules") -> Rules:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AlertRulesError(f"{name}: not valid TOML: {e}") from None
    return _Checker(name).rules(doc)


class _Checker:
    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, where: str, why: str) -> NoReturn:
        raise AlertRulesError(f"{self.name}: {where}: {why}")

    def table(self, doc: Mapping[str, Any], key: str, required: bool = False) -> dict[str, Any]:
        v = doc.get(key, None)
        if v is None:
            if required:
                self.fail(key, "missing")
            return {}
        if not isinstance(v, dict):
            self.fail(key, "must be a table")
        return v

    def number(self, where: str, v: object, low: float = 0.0, integer: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            self.fail(where, f"want a {'whole ' if integer else ''}number, not {v!r}")
        if v < low:
            self.fail(where, f"must be at least {low}, not {v}")
        return v

    def strings(self, where: str, v: object, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
            self.fail(where, "want a non-empty list of names")
        for x in v:
            if allowed is not None and x not in allowed:
                self.fail(where, f"unknown {x!r} (known: {', '.join(allowed)})")
        return tuple(v)

    def unknown(self, where: str, d: Mapping[str, Any], known: Iterable[str]) -> None:
        for k in d:
            if k not in known:
                self.fail(f"{where}{k}" if where else k, f"unknown key (known: {', '.join(known)})")

    def rules(self, doc: Mapping[str, Any]) -> Rules:
        self.unknown("", doc, ("thresholds", "patients", "silence", "mqtt", "smtp", "groups", "routes"))
        th = self.thresholds(self.table(doc, "thresholds"))
        patients = self.table(doc, "patients")
        for k, v in patients.items():
            if not isinstance(v, str):
                self.fail(f"patients.{k}", "want the patient as a string")
        silence = self.table(doc, "silence")
        self.unknown("silence.", silence, ("devices", "codes"))
        devs = {k: self.number(f"silence.devices.{k}", v, 1) for k, v in self.table(silence, "devices").items()}
        codes = {}
        for k, v in self.table(silence, "codes").items():
            if not k.isdigit():
                self.fail(f"silence.codes.{k}", "want an MDC code (digits) as the key")
            codes[int(k)] = self.number(f"silence.codes.{k}", v, 1)
        mqtt = self.table(doc, "mqtt")
        self.unknown("mqtt.", mqtt, ("host", "port", "user", "password", "ca", "client_id"))
        if mqtt:
            if not isinstance(mqtt.get("host"), str):
                self.fail("mqtt.host", "missing")
            self.number("mqtt.port", mqtt.get("port", 1883), 1, integer=True)
        smtp = self.table(doc, "smtp")
        self.unknown("smtp.", smtp, ("host", "port", "sender", "user", "password", "starttls"))
        if smtp:
            for k in ("host", "sender"):
                if not isinstance(smtp.get(k), str):
                    self.fail(f"smtp.{k}", "missing")
            self.number("smtp.port", smtp.get("port", 25), 1, integer=True)
        groups = {}
        for gname, g in self.table(doc, "groups", required=True).items():
            groups[gname] = self.group(gname, g, mqtt, smtp)
        if not groups:
            self.fail("groups", "no responder group")
        routes = doc.get("routes")
        if not isinstance(routes, list) or not routes:
            self.fail("routes", "want at least one [[routes]] entry")
        out = []
        for i, r in enumerate(routes):
            w = f"routes[{i}]"
            if not isinstance(r, dict):
                self.fail(w, "must be a table")
            self.unknown(w + ".", r, ("kinds", "severities", "groups", "stop_on_clear"))
            kinds = self.strings(w + ".kinds", r.get("kinds", ["*"]), KINDS + ("*",))
            sev = self.strings(w + ".severities", r["severities"], SEVERITIES) if "severities" in r else ()
            gs = self.strings(w + ".groups", r.get("groups"), tuple(groups))
            soc = r.get("stop_on_clear", True)
            if not isinstance(soc, bool):
                self.fail(w + ".stop_on_clear", "want true or false")
            out.append(Route(kinds, sev, gs, soc))
        return Rules(th, groups, tuple(out), dict(patients), devs, codes, dict(mqtt), dict(smtp))

    def thresholds(self, t: Mapping[str, Any]) -> Thresholds:
        d = Thresholds()
        known = tuple(Thresholds.__dataclass_fields__)
        self.unknown("thresholds.", t, known)
        kw = {}
        for k, v in t.items():
            integer = k in ("journal_capacity", "refusals")
            kw[k] = self.number(f"thresholds.{k}", v, 0 if k == "journal_capacity" else 0.01 if not integer else 1,
                                integer)
        th = Thresholds(**{**{k: getattr(d, k) for k in known}, **kw})
        if th.poll_s > 0.5:
            self.fail("thresholds.poll_s", "at most 0.5 s (alarms must not wait longer)")
        if th.battery_clear_pct < th.battery_low_pct:
            self.fail("thresholds.battery_clear_pct", "must be at least battery_low_pct (hysteresis)")
        if th.journal_clear_pct > th.journal_fill_pct:
            self.fail("thresholds.journal_clear_pct", "must be at most journal_fill_pct (hysteresis)")
        return th

    def group(self, gname: str, g: Mapping[str, Any], mqtt: Mapping[str, Any], smtp: Mapping[str, Any]) -> Group:
        w = f"groups.{gname}"
        if not isinstance(g, dict):
            self.fail(w, "must be a table")
        self.unknown(w + ".", g, ("ack_timeout_s", "channels"))
        if "ack_timeout_s" not in g:
            self.fail(w + ".ack_timeout_s", "missing")
        timeout = self.number(w + ".ack_timeout_s", g["ack_timeout_s"], 0.01)
        chans = g.get("channels")
        if not isinstance(chans, list) or not chans:
            self.fail(w + ".channels", "want at least one channel")
        out = []
        for i, c in enumerate(chans):
            cw = f"{w}.channels[{i}]"
            if not isinstance(c, dict):
                self.fail(cw, "must be a table")
            t = c.get("type")
            if t not in CHANNELS:
                self.fail(cw + ".type", f"want one of {', '.join(CHANNELS)}, not {t!r}")
            need = {"mqtt": "topic", "webhook": "url", "email": "to"}[t]
            self.unknown(cw + ".", c, ("type", need, "timeout_s", "retries"))
            v = c.get(need)
            if t == "email":
                target = ",".join(self.strings(cw + ".to", v))
                if not smtp:
                    self.fail(cw, "e-mail needs an [smtp] table")
            else:
                if not isinstance(v, str) or not v:
                    self.fail(cw + "." + need, f"a{'n' if t == 'mqtt' else ''} {t} channel needs {need}")
                if t == "webhook" and not v.startswith(("http://", "https://")):
                    self.fail(cw + ".url", f"want an http:// or https:// URL, not {v!r}")
                if t == "mqtt" and (not mqtt or "#" in v or "+" in v):
                    self.fail(cw, "an mqtt channel needs an [mqtt] table and a topic without wildcards")
                target = v
            timeout_s = self.number(cw + ".timeout_s", c.get("timeout_s", 5.0), 0.01)
            retries = self.number(cw + ".retries", c.get("retries", 3), 0, integer=True)
            out.append(Channel(t, target, timeout_s, retries))
        return Group(gname, timeout, tuple(out))
