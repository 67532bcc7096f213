"""`samband patient link|unlink|show`: which patient a hub serves, kept in the
receiver's database (receiver/patients.py says why never on the hub)."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError
from samband.paths import default_db

if TYPE_CHECKING:
    from samband.receiver.store import Store


def _open(db: str | None, create: bool) -> Store:
    from samband.receiver.store import StoreError, open_store
    db = db or default_db()
    try:
        return open_store(db, create=create)
    except StoreError as e:
        raise SambandError(f"{e}: give --db the database `samband receive` or `make run` writes") from None


def _when(text: str | None) -> int | None:
    from samband.cli.fhir import parse_when
    return None if text is None else parse_when(text, int(time.time() * 1000))


def _line(k: dict[str, Any]) -> str:
    from samband.receiver.patients import iso
    until = iso(k["until"]) if k["until"] is not None else "now"
    return f"hub {k['hub']}  {k['system']}|{k['value']}  {iso(k['since'])} to {until}  ref {k['ref']}"


def cmd_patient(args: Namespace) -> None:
    from samband.receiver import patients
    if args.action == "show":
        store = _open(args.db, create=False)
        try:
            hub = patients.check_hub(args.hub) if args.hub else None
            who = patients.parse_token(args.patient) if args.patient else None
            ls = patients.links(store, hub=hub, patient=who)
        finally:
            store.close()
        if args.json:
            print(json.dumps(ls, indent=1))
        elif not ls:
            print("no patient links" + (f" for hub {hub}" if hub else "") + (f" for {args.patient}" if who else ""))
        else:
            for k in ls:
                print(_line(k))
        return
    hub = patients.check_hub(args.hub)
    if args.action == "link":
        if args.system is None or args.id is None:
            raise SambandError("samband patient link: give --system URI and --id VALUE (the patient's identifier)")
        system, value = patients.check_identifier(args.system, args.id)
        store = _open(args.db, create=False)
        try:
            new, closed = patients.link(store, hub, system, value, _when(args.since))
        finally:
            store.close()
        if closed is not None:
            print(f"closed: {_line(closed)}")
        print(f"linked: {_line(new)}")
    else:
        store = _open(args.db, create=False)
        try:
            closed = patients.unlink(store, hub, _when(args.at))
        finally:
            store.close()
        print(f"unlinked: {_line(closed)}")
