"""`samband provision`: give a hub its keys and configuration.

A virtual hub is provisioned by writing into its flash folder; a board over
its serial port (raw REPL). Either way the hub gets keys/hub.key (its own
secret: generated here, written to the hub, never printed or kept),
keys/authority.pub, keys/receivers (the receiver keys it seals to, signed
by the depot's authority), config/devices.json (the allow-list) and
config/hub.json; the depot records the hub's public key."""

import json
from pathlib import Path

from samband.errors import SambandError


def _device(spec):
    from hub.ble import addr_parse
    from hub.kinds import KINDS
    kind, sep, addr = spec.partition("=")
    if not sep or kind not in KINDS:
        raise SambandError(f"--device {spec!r}: want KIND=AA:BB:CC:DD:EE:FF with KIND one of {', '.join(sorted(KINDS))}")
    try:
        addr_parse(addr)
    except ValueError as e:
        raise SambandError(f"--device {spec!r}: {e}") from None
    return {"addr": addr.upper() if not addr.endswith("/r") else addr[:-2].upper() + "/r", "kind": kind, "name": ""}


def files_for(depot, hub_id, devices=(), hub_config=None):
    """{path on the hub's flash: bytes}, and records the hub in the depot."""
    authority = depot.authority()
    receivers = depot.receiver_publics()[:4]
    public, files = authority.provision(hub_id, receivers)
    depot.add_hub(hub_id, public)
    files = {"/" + k: v for k, v in files.items()}
    files["/config/devices.json"] = json.dumps({"devices": list(devices)}).encode()
    files["/config/hub.json"] = json.dumps(hub_config or {}).encode()
    return files


def to_flash_folder(flash, files):
    flash = Path(flash)
    for path, data in files.items():
        p = flash / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if path.endswith(".key"):
            p.chmod(0o600)


def to_board(port, files):
    from samband.transport import Hub
    with Hub(port) as h:
        for path, data in files.items():
            d = path.rsplit("/", 1)[0]
            h.exec(f"import os\ntry:\n os.mkdir({d!r})\nexcept OSError:\n pass")
            h.exec(f"f = open({path!r}, 'wb')\nf.write({bytes(data)!r})\nf.close()")


def board_uid(port):
    from samband.transport import Hub
    with Hub(port) as h:
        out = h.exec("import machine, binascii; print(binascii.hexlify(machine.unique_id()).decode())").strip()
    return bytes.fromhex(out)


def _der(path):
    """A CA certificate as DER (the hub's TLS wants DER); PEM is converted."""
    import base64
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SambandError(f"--broker-ca {path}: {e.strerror}") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        body = b"".join(l for l in data.splitlines() if l and not l.startswith(b"-----"))
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise SambandError(f"--broker-ca {path}: not a PEM certificate") from None
    return data


def cmd_provision(args):
    from samband.depot import Depot
    depot = Depot(args.depot)
    devices = [_device(s) for s in args.device]
    cfg = {}
    if args.pairing:
        cfg["pairing_s"] = args.pairing
    if args.rebond:
        cfg["rebond"] = args.rebond
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        if not host or not port.isdigit():
            raise SambandError(f"--broker {args.broker!r}: want HOST:PORT")
        cfg["uplink"] = {"host": host, "port": int(port)}
    extra = {}
    if args.broker_ca:
        extra["/keys/ca.der"] = _der(args.broker_ca)
    if args.broker_password_file:
        try:
            extra["/keys/mqtt.password"] = Path(args.broker_password_file).read_bytes().strip()
        except OSError as e:
            raise SambandError(f"--broker-password-file: {e.strerror}") from None
    if args.flash:
        uid = bytes.fromhex(args.uid or "00005a4d0001")
        to_flash_folder(args.flash, {**files_for(depot, uid, devices, cfg), **extra})
        where = str(args.flash)
    elif args.port:
        uid = board_uid(args.port)
        to_board(args.port, {**files_for(depot, uid, devices, cfg), **extra})
        where = args.port
    else:
        raise SambandError("say where the hub is: --flash DIR (virtual hub) or --port /dev/ttyUSB0")
    print(f"provisioned hub {uid.hex()} at {where}: {len(devices)} device(s); depot {depot.path}")


def add_parser(sub):
    p = sub.add_parser("provision", help="give a hub its keys, allowed devices and configuration")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--flash", type=Path, help="a virtual hub's flash folder")
    where.add_argument("--port", help="a board's serial port")
    p.add_argument("--uid", help="virtual hub unique id in hex (default 00005a4d0001)")
    p.add_argument("--device", action="append", default=[], metavar="KIND=ADDR",
                   help="allow a device, e.g. glucose=C0:FF:EE:00:00:01 (repeatable)")
    p.add_argument("--pairing", type=int, default=0, metavar="SECONDS",
                   help="open a pairing window this long after boot")
    p.add_argument("--rebond", choices=("auto", "window"),
                   help="when a device has lost its bond: pair again at once (auto, the default) or only "
                        "inside a pairing window (window: someone confirms it is the patient's device)")
    p.add_argument("--broker", help="MQTT broker HOST:PORT for the uplink")
    p.add_argument("--broker-ca", help="the broker's CA certificate (PEM or DER); the hub verifies the broker with it")
    p.add_argument("--broker-password-file", help="file holding the hub's MQTT password (never on the command line)")
    p.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    p.set_defaults(func=cmd_provision)
