"""The dashboard's users file: names, roles and scrypt password hashes (TOML).

    [users.kari]
    role = "nurse"
    password = "scrypt$16384$8$1$<salt hex>$<hash hex>"

A password is never stored, only its hash: hashlib.scrypt (memory-hard, in
the standard library) with a random 16-byte salt, parameters kept in the
string so that they can be raised later without invalidating old hashes.
`samband dashboard adduser` writes entries. Errors name the user and key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tomllib
from pathlib import Path

from samband.errors import SambandError

ROLES = ("nurse", "doctor", "technician")
CLINICAL = ("nurse", "doctor")
_N, _R, _P = 2 ** 14, 8, 1
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class UsersError(SambandError):
    pass


def hash_password(password: str, salt: bytes | None = None, n: int = _N, r: int = _R, p: int = _P) -> str:
    if not password:
        raise UsersError("an empty password")
    salt = os.urandom(16) if salt is None else salt
    h = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${h.hex()}"


def check_password(password: str, stored: str) -> bool:
    """True when password matches the stored hash; a malformed hash is False, not an exception."""
    try:
        kind, n, r, p, salt, h = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(bytes.fromhex(h)))
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(got, bytes.fromhex(h))


def parse(text: str, where: str = "users file") -> dict[str, dict[str, str]]:
    """{name: {"role": role, "password": hash}} from the file's text; one-line errors."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsersError(f"{where}: {e}") from None
    unknown = set(doc) - {"users"}
    if unknown:
        raise UsersError(f"{where}: unknown key {sorted(unknown)[0]!r} (only [users.NAME] tables)")
    out = {}
    for name, u in (doc.get("users") or {}).items():
        if not _NAME.match(name) or not isinstance(u, dict):
            raise UsersError(f"{where}: users.{name}: a user is a table with role and password")
        extra = set(u) - {"role", "password"}
        if extra:
            raise UsersError(f"{where}: users.{name}.{sorted(extra)[0]}: unknown key")
        if u.get("role") not in ROLES:
            raise UsersError(f"{where}: users.{name}.role: one of {', '.join(ROLES)}, not {u.get('role')!r}")
        pw = u.get("password")
        if not isinstance(pw, str) or not pw.startswith("scrypt$") or pw.count("$") != 5:
            raise UsersError(f"{where}: users.{name}.password: a scrypt hash (samband dashboard adduser)")
        out[name] = {"role": u["role"], "password": pw}
    if not out:
        raise UsersError(f"{where}: no users (add one with samband dashboard adduser)")
    return out


def load(path: str | Path) -> dict[str, dict[str, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f.read(), str(path))
    except OSError as e:
        raise UsersError(f"cannot read the users file {path}: {e.strerror}") from None


def entry(name: str, role: str, password: str) -> str:
    """The TOML text of one user, to append to the file."""
    if not _NAME.match(name):
        raise UsersError(f"a user name is letters, digits, . _ - (not {name!r})")
    if role not in ROLES:
        raise UsersError(f"role: one of {', '.join(ROLES)}")
    return f'\n[users.{name}]\nrole = "{role}"\npassword = "{hash_password(password)}"\n'
