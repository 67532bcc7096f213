"""`samband provision`: give a hub its keys and configuration.

A virtual hub is provisioned by writing onto its flash image (vhub/flash.py); a board over
its serial port (raw REPL). Either way the hub gets keys/hub.key (its own
secret: generated here, written to the hub, never printed or kept),
keys/authority.pub, keys/receivers (the receiver keys it seals to, signed
by the depot's authority), keys/release.pub (the depot's release key, for
updates), config/devices.json (the allow-list) and config/hub.json; the depot records the hub's public key."""

import json
from pathlib import Path

from samband.errors import SambandError


def parse_device(spec):
    from hub import kinds
    from hub.ble import addr_parse
    kind, sep, addr = spec.partition("=")
    if not sep or kind not in kinds.names():
        raise SambandError(f"--device {spec!r}: want KIND=AA:BB:CC:DD:EE:FF with KIND one of "
                           f"{', '.join(kinds.names())}")
    try:
        addr_parse(addr)
    except ValueError as e:
        raise SambandError(f"--device {spec!r}: {e}") from None
    return {"addr": addr.upper() if not addr.endswith("/r") else addr[:-2].upper() + "/r", "kind": kind, "name": ""}


def parse_devices(specs):
    """--device values to the allow-list; an address given twice is refused (which
    kind would it be?), as is the same line twice (a typo hides a missing device)."""
    out, seen = [], {}
    for spec in specs:
        d = parse_device(spec)
        key = d["addr"].upper()
        if key in seen:
            raise SambandError(f"--device {d['addr']} is given twice ({seen[key]} and {spec}): "
                               f"give each device once")
        seen[key] = spec
        out.append(d)
    return out


def check_board(board, devices):
    """Refuse, in one line, a device kind the board cannot collect (a kind that needs a bond on a
    board that cannot bond): half-working collection is worse than a clear no."""
    from samband.device import boards
    bad = boards.kinds_it_cannot_serve(board, [d["kind"] for d in devices])
    if bad:
        ok = [n for n in boards.names() if not boards.kinds_it_cannot_serve(boards.load(n), bad)]
        k = sorted(bad)[0]
        raise SambandError(f"--device {k}: {bad[k]}; boards that can: {', '.join(ok) or 'none'}")


def flash_board(flash, name=None):
    """The board a virtual hub's flash is for: --board, else the board.json its firmware build put there, else vhub."""
    from samband.device import boards
    if name:
        return boards.load(name)
    from samband.vhub.flash import Flash, FlashError
    try:
        return boards.validate(json.loads(Flash(flash).read("/board.json")))
    except (OSError, ValueError, FlashError):
        return boards.load("vhub")


def board_of(port, name=None):
    """The board at a serial port: --board, else its /board.json (put there with the firmware)."""
    from samband.device import boards
    if name:
        return boards.load(name)
    from samband.device.transport import Hub
    with Hub(port) as h:
        text = h.exec("try:\n print(open('/board.json').read())\nexcept OSError:\n print('{}')").strip()
    try:
        b = json.loads(text)
        return boards.load(b["name"]) if b.get("name") in boards.names() else boards.validate(b)
    except (ValueError, KeyError):
        raise SambandError(f"{port}: no usable /board.json on the board: "
                           f"deploy its firmware first, or say --board NAME") from None


def parse_uid(text, what="--uid"):
    """A hub's unique id in hex (a virtual hub's, or machine.unique_id() of a board: 6 or 8 bytes)."""
    t = (text or "").strip().lower().replace(":", "")
    try:
        uid = bytes.fromhex(t)
    except ValueError:
        uid = b""
    if not 1 <= len(uid) <= 16 or len(t) != 2 * len(uid):
        raise SambandError(f"{what} {text!r}: want the hub's unique id in hex, e.g. 00005a4d0001")
    return uid


def parse_broker(text):
    """--broker HOST:PORT -> (host, port); [v6]:PORT works too."""
    host, sep, port = (text or "").rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SambandError(f"--broker {text!r}: want HOST:PORT with a port from 1 to 65535, "
                           f"e.g. broker.example.org:8883")
    return host, int(port)


def check_pairing(seconds):
    if seconds is None or seconds < 0 or seconds > 24 * 3600:
        raise SambandError(f"--pairing {seconds}: want the pairing window in seconds, 0 (none) to 86400")
    return seconds


def files_for(depot, hub_id, devices=(), hub_config=None):
    """{path on the hub's flash: bytes}, and records the hub in the depot."""
    authority = depot.authority()
    receivers = depot.receiver_publics()[:4]
    public, files = authority.provision(hub_id, receivers)
    depot.add_hub(hub_id, public)
    files = {"/" + k: v for k, v in files.items()}
    files["/keys/release.pub"] = depot.release_public()  # what the hub verifies releases with (docs/ota.md)
    files["/config/devices.json"] = json.dumps({"devices": list(devices)}).encode()
    files["/config/hub.json"] = json.dumps(hub_config or {}).encode()
    return files


def to_flash_folder(folder, files):
    """Write files into a plain folder laid out as a hub's flash (tests that run
    the unix port on such a folder directly; a virtual hub's flash is an image: to_flash)."""
    folder = Path(folder)
    for path, data in files.items():
        p = folder / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if path.endswith(".key"):
            p.chmod(0o600)


def to_flash(flash, files):
    """Write files onto a virtual hub's flash image (a folder, or a Flash), creating it if needed.

    The hub must not be running: its supervisor holds the image (FlashError)."""
    from samband.vhub.flash import as_flash
    as_flash(flash).ensure().write_files(files)


def to_board(port, files):
    from samband.device.transport import Hub
    with Hub(port) as h:
        for path, data in files.items():
            d = path.rsplit("/", 1)[0]
            h.exec(f"import os\ntry:\n os.mkdir({d!r})\nexcept OSError:\n pass")
            h.exec(f"f = open({path!r}, 'wb')\nf.write({bytes(data)!r})\nf.close()")


def board_uid(port):
    from samband.device.transport import Hub
    with Hub(port) as h:
        out = h.exec("import machine, binascii; print(binascii.hexlify(machine.unique_id()).decode())").strip()
    return bytes.fromhex(out)


def ca_der(path):
    """A CA certificate as DER (the hub's TLS wants DER); PEM is converted. Anything
    that is not an X.509 certificate is refused here rather than by the hub's TLS
    at its first connection, far from the technician."""
    import base64

    from cryptography import x509
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SambandError(f"--broker-ca {path}: {e.strerror}") from None
    bad = f"--broker-ca {path}: not a certificate; give the broker's CA certificate (PEM or DER)"
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
        first = data.split(b"-----END CERTIFICATE-----", 1)[0]  # of a chain, the first one
        body = b"".join(x.strip() for x in first.splitlines() if x.strip() and not x.startswith(b"-----"))
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError:
            raise SambandError(bad) from None
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        raise SambandError(bad) from None
    return data
