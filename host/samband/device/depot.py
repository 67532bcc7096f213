"""The depot: where a technician's keys live (a folder, 0700, never in git).

  authority.key      the secret that authenticates receiver-key configs to hubs
  receivers/<kid>.key  receiver secrets (the receiver needs them; hubs get the publics)
  hubs.json          {hub id hex: {"public": hex, "revoked": bool, "board": name}}
  release.key        the Ed25519 seed that signs releases (samband release); hubs get its public

`samband provision` reads and extends it; `samband receive` opens records
with it (samband.receiver.opener.Opener). Secrets are written 0600 and never printed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nacl.bindings as nb

from samband.errors import SambandError
from samband.paths import REPO

if TYPE_CHECKING:
    from samband.device.authority import Authority
    from samband.receiver.opener import Opener

DEFAULT = Path(os.environ.get("SAMBAND_DEPOT", REPO / "var" / "depot"))


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _create_secret_once(path: Path, data: bytes) -> None:
    """Write a new secret at path unless one is already there: two first uses at once keep
    one key (a hard link is atomic and fails if the name exists), and no reader ever sees
    a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_secret(tmp, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


class Depot:
    def __init__(self, path: str | Path | None = None, create: bool = True) -> None:
        self.path = Path(path or DEFAULT)
        if not self.path.is_dir():
            if not create:
                raise SambandError(f"no depot at {self.path}: provision a hub first (samband provision)")
            self.path.mkdir(parents=True, mode=0o700)
        os.chmod(self.path, 0o700)

    # -- authority and receiver keys ---------------------------------------------
    def authority(self, create: bool = True) -> Authority:
        """The authority key; made on first use (create), else refused when missing: a key
        made now would not be the one the hubs were provisioned with."""
        from samband.device.authority import Authority
        p = self.path / "authority.key"
        if not p.exists():
            if not create:
                raise SambandError(f"no authority key in the depot {self.path}: only the depot that "
                                   f"provisioned the hub can configure it")
            _write_secret(p, os.urandom(32))
        sk = p.read_bytes()
        if len(sk) != 32:
            raise SambandError(f"{p} is damaged (not 32 bytes)")
        return Authority(sk)

    def receiver_keys(self) -> dict[int, bytes]:
        """{key id: secret}; makes key 1 on first use."""
        d = self.path / "receivers"
        keys = {}
        if d.is_dir():
            for p in sorted(d.glob("*.key")):
                try:
                    kid = int(p.stem)
                except ValueError:
                    continue
                sk = p.read_bytes()
                if len(sk) == 32 and 0 <= kid <= 255:
                    keys[kid] = sk
        if not keys:
            keys[1] = self.new_receiver_key(1)
        return keys

    def new_receiver_key(self, kid: int | None = None) -> bytes:
        d = self.path / "receivers"
        if kid is None:
            have = [int(p.stem) for p in d.glob("*.key")] if d.is_dir() else []
            kid = max(have, default=0) + 1
        if not 0 <= kid <= 255:
            raise SambandError("receiver key ids are 0..255")
        sk = os.urandom(32)
        _write_secret(d / f"{kid}.key", sk)
        return sk

    def receiver_publics(self) -> list[tuple[int, bytes]]:
        """[(kid, public)], newest first: the first is what hubs seal to."""
        return [(kid, nb.crypto_scalarmult_base(sk)) for kid, sk in sorted(self.receiver_keys().items(), reverse=True)]

    # -- release signing key ------------------------------------------------------------
    def release_key(self, create: bool = True) -> bytes:
        """The release signing seed (32 bytes), made on first use (create). Refused if others
        can read it: whoever holds it can update every hub."""
        p = self.path / "release.key"
        if not p.exists():
            if not create:
                raise SambandError(f"no release key in the depot {self.path}: `samband release` makes one")
            _create_secret_once(p, os.urandom(32))
        mode = p.stat().st_mode & 0o777
        if mode & 0o077:
            raise SambandError(f"{p} can be read by others (mode {mode:03o}): `chmod 600 {p}` "
                               f"if nobody else could have copied it, else make a new release key")
        seed = p.read_bytes()
        if len(seed) != 32:
            raise SambandError(f"{p} is damaged (not 32 bytes)")
        return seed

    def release_public(self, create: bool = True) -> bytes:
        """The release key's public half: what hubs verify releases with."""
        return nb.crypto_sign_seed_keypair(self.release_key(create))[0]

    # -- the depot's JSON registries (hubs.json here; limits.json, receiver-configs.json) --
    def load_json(self, name: str) -> dict[str, Any]:
        """A registry file of the depot; a missing one is empty, a damaged one a one-line error."""
        p = self.path / name
        if not p.exists():
            return {}
        try:
            return json.loads(p.read_text())
        except ValueError as e:
            raise SambandError(f"{p} is not valid JSON: {e}") from None

    def save_json(self, name: str, data: dict[str, Any]) -> None:
        """Replace a registry file whole (a temporary file renamed over it): a crash leaves the old or the new."""
        p = self.path / name
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, p)

    # -- hub registry ---------------------------------------------------------------
    def hubs(self) -> dict[str, dict[str, Any]]:
        return self.load_json("hubs.json")

    def _save_hubs(self, hubs: dict[str, dict[str, Any]]) -> None:
        self.save_json("hubs.json", hubs)

    def add_hub(self, hub_id: bytes, public: bytes, board: str = "") -> None:
        hubs = self.hubs()
        hubs[hub_id.hex()] = {"public": public.hex(), "revoked": False, "board": board}
        self._save_hubs(hubs)

    def revoke(self, hub_id: bytes) -> None:
        hubs = self.hubs()
        if hub_id.hex() not in hubs:
            raise SambandError(f"hub {hub_id.hex()} is not in the depot")
        hubs[hub_id.hex()]["revoked"] = True
        self._save_hubs(hubs)

    def opener(self) -> Opener:
        """A samband.receiver.opener.Opener that knows every receiver key and hub of this depot."""
        from samband.receiver.opener import Opener
        hubs = self.hubs()
        return Opener(self.receiver_keys(),
                      {bytes.fromhex(h): bytes.fromhex(v["public"]) for h, v in hubs.items()},
                      [bytes.fromhex(h) for h, v in hubs.items() if v.get("revoked")])
