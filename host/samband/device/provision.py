"""`samband provision`: give a hub its keys and configuration, and change them later.

A virtual hub is provisioned by writing onto its flash image (vhub/flash.py); a board over
its serial port (raw REPL). Either way the hub gets keys/hub.key (its own
secret: generated here, written to the hub, never printed or kept),
keys/authority.pub, keys/receivers (the receiver keys it seals to, signed
by the depot's authority), keys/release.pub (the depot's release key, for
updates), config/devices.json (the allow-list) and config/hub.json; the depot records the hub's public key."""

from __future__ import annotations

import json
from argparse import Namespace
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.device.depot import Depot
    from samband.vhub.flash import Flash


def parse_device(spec: str) -> dict[str, str]:
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


def parse_devices(specs: Iterable[str] | None) -> list[dict[str, str]]:
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


def check_board(board: dict[str, Any], devices: Iterable[dict[str, Any]]) -> None:
    """Refuse, in one line, a device kind the board cannot collect (a kind that needs a bond on a
    board that cannot bond): half-working collection is worse than a clear no."""
    from samband.device import boards
    bad = boards.kinds_it_cannot_serve(board, [d["kind"] for d in devices])
    if bad:
        ok = [n for n in boards.names() if not boards.kinds_it_cannot_serve(boards.load(n), bad)]
        k = sorted(bad)[0]
        raise SambandError(f"--device {k}: {bad[k]}; boards that can: {', '.join(ok) or 'none'}")


def flash_board(flash: str | Path, name: str | None = None) -> dict[str, Any]:
    """The board a virtual hub's flash is for: --board, else the board.json its firmware build put there, else vhub."""
    from samband.device import boards
    if name:
        return boards.load(name)
    from samband.vhub.flash import Flash, FlashError
    try:
        return boards.validate(json.loads(Flash(flash).read("/board.json")))
    except (OSError, ValueError, FlashError):
        return boards.load("vhub")


def parse_uid(text: str, what: str = "--uid") -> bytes:
    """A hub's unique id in hex (a virtual hub's, or machine.unique_id() of a board: 6 or 8 bytes)."""
    t = (text or "").strip().lower().replace(":", "")
    try:
        uid = bytes.fromhex(t)
    except ValueError:
        uid = b""
    if not 1 <= len(uid) <= 16 or len(t) != 2 * len(uid):
        raise SambandError(f"{what} {text!r}: want the hub's unique id in hex, e.g. 00005a4d0001")
    return uid


def parse_broker(text: str) -> tuple[str, int]:
    """--broker HOST:PORT -> (host, port); [v6]:PORT works too."""
    host, sep, port = (text or "").rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SambandError(f"--broker {text!r}: want HOST:PORT with a port from 1 to 65535, "
                           f"e.g. broker.example.org:8883")
    return host, int(port)


def check_pairing(seconds: int) -> int:
    if seconds is None or seconds < 0 or seconds > 24 * 3600:
        raise SambandError(f"--pairing {seconds}: want the pairing window in seconds, 0 (none) to 86400")
    return seconds


def files_for(depot: Depot, hub_id: bytes, devices: Iterable[dict[str, Any]] = (),
              hub_config: dict[str, Any] | None = None, hub_secret: bytes | None = None) -> dict[str, bytes]:
    """{path on the hub's flash: bytes}, and records the hub in the depot. hub_secret:
    the hub's key to keep (re-provisioning), else a new one."""
    authority = depot.authority()
    receivers = depot.receiver_publics()[:4]
    public, files = authority.provision(hub_id, receivers, hub_secret=hub_secret)
    depot.add_hub(hub_id, public)
    files = {"/" + k: v for k, v in files.items()}
    files["/keys/release.pub"] = depot.release_public()  # what the hub verifies releases with (docs/ota.md)
    files["/config/devices.json"] = json.dumps({"devices": list(devices)}).encode()
    files["/config/hub.json"] = json.dumps(hub_config or {}).encode()
    return files


def to_flash_folder(folder: str | Path, files: dict[str, bytes]) -> None:
    """Write files into a plain folder laid out as a hub's flash (tests that run
    the unix port on such a folder directly; a virtual hub's flash is an image: to_flash)."""
    folder = Path(folder)
    for path, data in files.items():
        p = folder / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if path.endswith(".key"):
            p.chmod(0o600)


def to_flash(flash: Flash | str | Path, files: dict[str, bytes]) -> None:
    """Write files onto a virtual hub's flash image (a folder, or a Flash), creating it if needed.

    The hub must not be running: its supervisor holds the image (FlashError)."""
    from samband.vhub.flash import as_flash
    as_flash(flash).ensure().write_files(files)


def ca_der(path: str | Path) -> bytes:
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


# -- re-provisioning: what the hub has, what changes ---------------------------------------

class FlashTarget:
    """A virtual hub's flash image as a place to provision (the hub must not be running)."""

    def __init__(self, folder: str | Path, uid: bytes | None, board_name: str | None = None) -> None:
        self.folder, self._uid, self.board_name = Path(folder), uid, board_name
        self.where = str(folder)

    def __enter__(self) -> FlashTarget:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def uid(self) -> bytes | None:
        return self._uid

    def board(self) -> dict[str, Any]:
        return flash_board(self.folder, self.board_name)

    def read(self, path: str) -> bytes | None:
        from samband.vhub.flash import Flash, FlashError
        f = Flash(self.folder)
        if not f.exists():
            return None
        try:
            return f.read(path)
        except (FileNotFoundError, FlashError):
            return None

    def write(self, files: dict[str, bytes], remove: Iterable[str] = ()) -> None:
        from samband.vhub.flash import as_flash
        fl = as_flash(self.folder).ensure()
        with fl.edit() as m:
            for path, data in files.items():
                m.write(path, data)
            for path in remove:
                if m.exists(path):
                    m.remove(path)


class PortTarget:
    """A hub on a serial port (a board, or a virtual hub's pty), over the raw REPL in one
    session; its application is restarted when done, so it goes on collecting."""

    def __init__(self, port: str, board_name: str | None = None) -> None:
        self.port, self.board_name, self.where = port, board_name, port
        self.h = None

    def __enter__(self) -> PortTarget:
        from samband.device.transport import Hub
        self.h = Hub(self.port).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        from samband.device.deploy import restart
        restart(self.h)  # the raw REPL stopped the application: it runs again

    def _exec(self, code: str) -> str:
        from samband.errors import HubRaised
        try:
            return self.h.exec(code)
        except HubRaised as e:
            if e.kind == "ImportError":
                raise SambandError(f"{self.port}: no Samband firmware on the hub ({e}): run samband deploy "
                                   f"{self.port} first") from None
            raise

    def uid(self) -> bytes:
        """The hub's unique id as its own port interface says (machine.unique_id() on a board,
        the supervisor's uid on a virtual hub): what it seals and signs as."""
        out = self._exec("import binascii\nfrom hub import board as _b, ports as _p\n"
                         "print(binascii.hexlify(_p.load(_b.load()).unique_id()).decode())").strip()
        return parse_uid(out.splitlines()[-1] if out else "", f"{self.port}: the hub's unique id")

    def board(self) -> dict[str, Any]:
        from samband.device import boards
        if self.board_name:
            return boards.load(self.board_name)
        text = self.read("/board.json")
        try:
            b = json.loads(text)
            return boards.load(b["name"]) if b.get("name") in boards.names() else boards.validate(b)
        except (TypeError, ValueError, KeyError):
            raise SambandError(f"{self.port}: no usable /board.json on the board: "
                               f"deploy its firmware first, or say --board NAME") from None

    def read(self, path: str) -> bytes | None:
        out = self._exec(f"import binascii\ntry:\n f = open({path!r}, 'rb')\n"
                         f" print(binascii.hexlify(f.read()).decode())\n f.close()\n"
                         f"except OSError:\n print('-')").strip()
        return None if out == "-" else bytes.fromhex(out)

    def write(self, files: dict[str, bytes], remove: Iterable[str] = ()) -> None:
        for path, data in files.items():
            d = path.rsplit("/", 1)[0]
            self._exec(f"import os\ntry:\n os.mkdir({d!r})\nexcept OSError:\n pass")
            self._exec(f"f = open({path!r}, 'wb')\nf.write({bytes(data)!r})\nf.close()")
        for path in remove:
            self._exec(f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass")


def _json(data: bytes | None, default: Any, what: str) -> Any:
    if data is None:
        return default
    try:
        return json.loads(data)
    except ValueError:
        raise SambandError(f"the hub's {what} is not valid JSON: fix or remove it first") from None


def merge_devices(old: list[dict[str, Any]], new: list[dict[str, Any]],
                  remove: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The allow-list: the hub's own (pairing adds to it) with the given devices added or
    their kind changed, and the removed ones gone. Names given on the hub are kept."""
    out = [dict(d) for d in old]
    index = {d["addr"].upper(): d for d in out}
    for d in new:
        k = d["addr"].upper()
        if k in index:
            index[k]["kind"] = d["kind"]
        else:
            out.append(d)
            index[k] = d
    for spec in remove:
        addr = spec.strip()
        if addr.upper() not in index:
            raise SambandError(f"--remove-device {spec}: not on the hub's allow-list")
        out = [d for d in out if d["addr"].upper() != addr.upper()]
    return out


LEGACY_MQTT = "/keys/mqtt.password"  # in clear, from before the vault: sealed and removed


def plan(target: FlashTarget | PortTarget, opts: Namespace, depot_factory: Callable[[], Depot],
         devices: list[dict[str, Any]] | None,
         base_cfg_change: Callable[[dict[str, Any], dict[str, Any]], None]
         ) -> tuple[dict[str, bytes], list[str], list[str], bytes, dict[str, Any]]:
    """(files to write, paths to remove, lines saying what changes, uid, board) for one
    provisioning: every option checked against the board and what the hub has
    already; nothing written yet. base_cfg_change(cfg, secrets) applies the
    broker and pairing options in place."""
    from samband.device import boards, netcfg, vault
    board = target.board()
    uid = target.uid()
    old_cfg = _json(target.read("/config/hub.json"), {}, "/config/hub.json")
    old_devices = _json(target.read("/config/devices.json"), {"devices": []}, "/config/devices.json")
    old_devices = old_devices.get("devices", []) if isinstance(old_devices, dict) else []
    new_devices = merge_devices(old_devices, devices, opts.remove_device)
    check_board(board, new_devices)

    old_key = target.read("/keys/hub.key")
    old_key = old_key if old_key and len(old_key) == 32 else None
    old_secrets, remove = {}, []
    blob = target.read(vault.PATH)
    if blob and old_key:
        try:
            old_secrets = vault.unseal(blob, old_key)
        except SambandError:
            if not opts.rekey:
                raise
    cfg = json.loads(json.dumps(old_cfg))
    legacy = target.read(LEGACY_MQTT)
    if legacy is not None:
        remove.append(LEGACY_MQTT)
        if "mqtt" not in old_secrets and legacy.strip():
            old_secrets["mqtt"] = legacy.strip().decode("utf-8", "replace")
            if isinstance(cfg.get("uplink"), dict):
                cfg["uplink"]["password" + netcfg.SEALED] = "mqtt"
    secrets = dict(old_secrets)
    base_cfg_change(cfg, secrets)
    cfg, secrets = netcfg.apply(cfg, secrets, board, opts, [boards.load(n) for n in boards.names()])
    wanted = netcfg.referenced(cfg)
    for n in wanted:
        if n not in secrets:
            raise SambandError(f"the hub's config names the secret {n} but it cannot be read any more: "
                               f"give it again (--wifi, --apn-password-file, --sim-pin-file or "
                               f"--broker-password-file)")
    secrets = {n: v for n, v in secrets.items() if n in wanted}

    import os
    key = old_key if old_key and not opts.rekey else os.urandom(32)
    files = files_for(depot_factory(), uid, new_devices, cfg, hub_secret=key)
    if secrets:
        files[vault.PATH] = vault.seal(secrets, key)
    elif blob is not None:
        remove.append(vault.PATH)
    if old_key and key != old_key:
        bonds = target.read("/keys/bonds")
        resealed = vault.reseal_bonds(bonds, old_key, key) if bonds else None
        if resealed:
            files["/keys/bonds"] = resealed
    lines = netcfg.diff(old_cfg if not legacy else _with_legacy(old_cfg), old_devices, old_secrets,
                        cfg, new_devices, secrets)
    lines.append("  hub key: " + ("kept" if key == old_key else "new (--rekey)" if old_key else "new"))
    return files, remove, lines, uid, board


def _with_legacy(cfg: dict[str, Any]) -> dict[str, Any]:
    """The old config as if its clear MQTT password had been sealed: the diff then says (kept)."""
    from samband.device.netcfg import SEALED
    c = json.loads(json.dumps(cfg))
    if isinstance(c.get("uplink"), dict):
        c["uplink"]["password" + SEALED] = "mqtt"
    return c
