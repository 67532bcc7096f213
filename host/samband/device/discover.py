"""`samband discover`: which hubs are plugged in, and what they are.

Two separate steps, so that each can be tested without USB hardware: match
the serial ports the operating system lists (pyserial's list_ports) against
the USB VID:PID each board.json names (pure), then ask every candidate's
running application `?status` on its console with a short timeout (it is
not stopped: no Ctrl-C, no raw REPL). A port that answers nothing is listed
as silent rather than dropped: a technician looking for a hub wants to know
that something with a hub's USB bridge is there but not talking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from samband.device import boards


@dataclass
class Candidate:
    port: str
    boards: list = field(default_factory=list)  # boards whose USB ids match ([] = given by hand)
    usb: str = ""  # "vid:pid" as hex, "" for a port given by hand
    description: str = ""


def usb_ids(board_maps: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """{"vid:pid" (lower-case hex): [board names]} from parsed board.json maps."""
    out = {}
    for b in board_maps:
        for vp in (b.get("console") or {}).get("usb_ids", []):
            out.setdefault(vp.lower(), []).append(b["name"])
    return out


def match(ports: Iterable[Any], ids: dict[str, list[str]]) -> list[Candidate]:
    """The listed serial ports (objects with .device, .vid, .pid, .description, as
    pyserial's ListPortInfo) whose VID:PID a board names, in port order."""
    out = []
    for p in sorted(ports, key=lambda p: p.device):
        if p.vid is None or p.pid is None:
            continue
        vp = "%04x:%04x" % (p.vid, p.pid)
        if vp in ids:
            out.append(Candidate(p.device, list(ids[vp]), vp, p.description or ""))
    return out


def candidates(extra: Iterable[str] = (), list_ports: Callable[[], Iterable[Any]] | None = None) -> list[Candidate]:
    """USB candidates plus the ports given by hand (a virtual hub's pty), no port twice."""
    if list_ports is None:
        from serial.tools import list_ports as lp
        list_ports = lp.comports
    found = match(list_ports(), usb_ids(boards.load(n) for n in boards.names()))
    seen = {c.port for c in found}
    for p in extra:
        if p not in seen:
            found.append(Candidate(p))
            seen.add(p)
    return found


def ask(candidate: Candidate, timeout: float = 2.0) -> dict[str, Any]:
    """One row for a candidate: its status's identity, or why there is none."""
    from samband.device import console
    from samband.errors import HubError
    row = {"port": candidate.port, "usb": candidate.usb, "hub": None, "board": None, "version": None,
           "tree": None, "state": ""}
    try:
        with console.open_port(candidate.port) as ser:
            s = console.status(ser, timeout=timeout)
    except HubError as e:
        row["state"] = str(e)
        return row
    if s is None:
        maybe = "/".join(candidate.boards)
        row["state"] = "no answer" + (f" (a {maybe} USB bridge: no Samband firmware running, or "
                                      f"at its REPL)" if maybe else "")
        return row
    row.update(hub=s.get("uid"), board=s.get("board"), version=s.get("version"), tree=s.get("tree"),
               state="running" if not s.get("problems") else "; ".join(s["problems"][:2]))
    return row


def discover(extra: Iterable[str] = (), timeout: float = 2.0,
             list_ports: Callable[[], Iterable[Any]] | None = None) -> list[dict[str, Any]]:
    return [ask(c, timeout) for c in candidates(extra, list_ports)]


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned text for a terminal."""
    cols = ("port", "hub", "board", "version", "state")
    cells = [cols] + [tuple(str(r.get(c) or "-") for c in cols) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols) - 1)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row[:-1], widths)) + "  " + row[-1] for row in cells)
