"""`samband discover --lan`: hubs that advertise `_samband._tcp.local` over mDNS.

The hub's responder is firmware (hub/mdnsd.py, records from hub/mdns.py); this side
uses the zeroconf library, an implementation written independently of ours, so a
hub that zeroconf understands is one any Bonjour/Avahi browser understands too.
Two ways in: `browse()` multicasts on the LAN (the technician's case: boards on
5353), `ask()` sends one legacy unicast query straight to a responder's address
and port (a virtual hub, whose responder cannot own the host's 5353; and the
tests, which must not depend on multicast routing of the machine they run on).
Rows have the shape of device/discover.py's: the address stands where the port is.
"""

from __future__ import annotations

import socket
from typing import Any

from samband.errors import SambandError

SERVICE = "_samband._tcp.local."


def row(address: str, txt: dict[str, str], name: str = "") -> dict[str, Any]:
    """A discover row from a TXT dict {"id", "board", "ver"} (str values)."""
    return {"port": address, "usb": "", "hub": txt.get("id"), "board": txt.get("board"),
            "version": txt.get("ver"), "tree": None, "state": "mdns" + (f" {name}" if name else "")}


def _txt(props: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in props.items()}


def parse_answer(data: bytes) -> dict[str, Any] | None:
    """One row from a responder's reply (bytes), or None if it names no hub. Parsed by
    zeroconf's DNSIncoming, so our encoder is checked by someone else's decoder."""
    from zeroconf import DNSAddress, DNSIncoming, DNSService, DNSText
    msg = DNSIncoming(data)
    if not msg.valid:
        raise SambandError("mdns: the reply is not a DNS message")
    txt, addr, name = {}, None, ""
    for rec in msg.answers():
        if isinstance(rec, DNSText):
            raw, i = rec.text, 0
            while i < len(raw):
                kv = raw[i + 1:i + 1 + raw[i]].decode(errors="replace")
                i += 1 + raw[i]
                k, _, v = kv.partition("=")
                txt[k] = v
            name = rec.name.split(".")[0]
        elif isinstance(rec, DNSAddress) and len(rec.address) == 4:
            addr = socket.inet_ntoa(rec.address)
        elif isinstance(rec, DNSService):
            name = rec.name.split(".")[0]
    if "id" not in txt:
        return None
    return row(addr or "?", txt, name)


def query() -> bytes:
    """A legacy unicast PTR query for _samband._tcp.local (bytes), made by zeroconf."""
    from zeroconf import DNSOutgoing, DNSQuestion

    from hub import mdns
    out = DNSOutgoing(0, multicast=False)  # flags 0: a standard query
    out.id = 0x5A4D
    out.add_question(DNSQuestion(SERVICE, mdns.PTR, 1))  # class IN
    return out.packets()[0]


def ask(host: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    """Ask one responder directly (host, UDP port): its row, or SambandError."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(query(), (host, port))
            data, src = s.recvfrom(9000)
        except TimeoutError:
            raise SambandError(f"mdns: no answer from {host}:{port} within {timeout:g} s") from None
        except OSError as e:
            raise SambandError(f"mdns: {host}:{port}: {e.strerror or e}") from None
    r = parse_answer(data)
    if r is None:
        raise SambandError(f"mdns: {host}:{port} answered but named no Samband hub")
    if r["port"] == "127.0.0.1" or r["port"] == "?":
        r["port"] = src[0]
    r["port"] += f":{port}" if port != 5353 else ""
    return r


def browse(timeout: float = 3.0, interfaces: Any = None) -> list[dict[str, Any]]:
    """Rows for every hub that answers a multicast browse within timeout seconds."""
    import time

    from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf
    names = []

    def seen(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        if state_change is ServiceStateChange.Added and name not in names:
            names.append(name)

    try:
        zc = Zeroconf(interfaces=interfaces) if interfaces else Zeroconf()
    except OSError as e:
        raise SambandError(f"mdns: cannot browse the LAN: {e.strerror or e}") from None
    try:
        ServiceBrowser(zc, SERVICE, handlers=[seen])
        time.sleep(timeout)
        rows = []
        for n in names:
            info = zc.get_service_info(SERVICE, n, timeout=int(timeout * 1000))
            if info is None:
                continue
            addrs = info.parsed_addresses()
            rows.append(row(addrs[0] if addrs else "?", _txt(info.properties), n.split(".")[0]))
        return rows
    finally:
        zc.close()
