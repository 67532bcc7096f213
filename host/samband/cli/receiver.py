"""`samband receive` and `samband readings`: the receiver service and queries of what it stored."""

from __future__ import annotations

import csv
import json
import sys
import time
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from samband.errors import SambandError
from samband.paths import default_db

if TYPE_CHECKING:
    from samband.reading import Reading
    from samband.receiver.fleet import FleetReceiver
    from samband.receiver.ingest import Ingest
    from samband.receiver.store import Store


def _print_reading(hub_hex: str, seq: int, r: Reading) -> None:
    from samband.reading_text import PRIORITIES, describe
    n = r.named()
    prio = PRIORITIES.get(n.get("prio"))
    print(f"{time.strftime('%H:%M:%S')} hub {hub_hex} #{seq:<6} {n.get('dev', '?')} {describe(n)}"
          + (f"  {prio}" if prio else ""), flush=True)


def cmd_receive(args: Namespace) -> None:
    from samband.device.depot import Depot
    from samband.receiver.ingest import Ingest
    from samband.receiver.store import open_store
    from samband.receiver.subscriber import Receiver
    if args.ca is not None:
        readable(args.ca, "--ca", "the broker's CA certificate (PEM)")
    password = args.password
    if args.password_file:
        password = readable(args.password_file, "--password-file", "the MQTT password").strip()
    depot = Depot(args.depot, create=False)
    db = args.db or default_db()
    store = open_store(db)
    ing = Ingest(depot.opener(), store, None if args.quiet else _print_reading)
    if getattr(args, "nats", None):
        rx = _fleet_receiver(ing, args.nats, args.ca, args.user, password)
        where = "NATS " + args.nats
    else:
        rx = Receiver(ing, args.host, args.port, args.ca, args.user, password, args.group)
        where = f"{args.host}:{args.port}"
    try:
        rx.start()
    except OSError as e:
        store.close()
        raise SambandError(f"cannot reach the MQTT broker at {args.host}:{args.port}: {e.strerror or e}; "
                           f"is it running, and are --host/--port right?") from None
    except SambandError:
        store.close()
        raise
    print(f"samband receive: {where}, database {db}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        rx.stop()
        store.close()


def _fleet_receiver(ingest: Ingest, urls: str, ca: str | None, user: str, password: str | None) -> FleetReceiver:
    """A receiver of a fleet (receiver/fleet.py) on the NATS nodes given as a comma-separated list."""
    try:
        from samband.receiver.fleet import FleetReceiver
    except ImportError:
        raise SambandError("--nats needs the nats-py package: pip install 'samband[fleet]'") from None
    servers = [u.strip() for u in urls.split(",") if u.strip()]
    if not servers:
        raise SambandError("--nats: give the cluster's nodes, e.g. tls://nats1:4222,tls://nats2:4222")
    return FleetReceiver(ingest, servers, ca, user, password)


def readable(path: str | Path, option: str, what: str) -> str:
    """The text of a file an option names, or a one-line SambandError saying which
    option and what it should hold (shared by the commands that read secrets: ota)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise SambandError(f"{option} {path}: {e.strerror}; give the file holding {what}") from None


def existing_store(db: str | Path | None) -> Store:
    """The receiver's database a reading command names (--db, else the default), never made
    anew: a missing one is a one-line SambandError saying which to give (readings, fhir, hubs)."""
    from samband.receiver.store import StoreError, open_store
    try:
        return open_store(db or default_db(), create=False)
    except StoreError as e:
        hint = ("`make run` or `samband receive` writes the default database; give --db the one to read"
                if db is None else "give --db the database `samband receive` writes")
        raise SambandError(f"{e}: {hint}") from None


def cmd_readings(args: Namespace) -> None:
    store = existing_store(args.db)
    try:
        _show_readings(store, args)
    finally:
        store.close()


def _show_readings(store: Store, args: Namespace) -> None:
    if args.status:
        json.dump(store.hubs(), sys.stdout, indent=1)
        print()
        return
    rows = store.readings(args.hub, args.device, args.type, args.since, args.until, args.limit)
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    if fmt == "table":
        from samband.reading_text import table
        if not rows:
            print("no readings" + (" match" if any((args.hub, args.device, args.type, args.since, args.until))
                                   else " stored yet"), file=sys.stderr)
            return
        for line in table(rows):
            print(line)
    elif fmt == "json":
        json.dump(rows, sys.stdout, indent=None)
        print()
    else:
        keys = ["hub", "seq", "dev", "mdc", "val", "exp", "unit", "dts", "hts", "prio", "rec", "epoch", "received"]
        w = csv.writer(sys.stdout)
        w.writerow(keys)
        for r in rows:
            w.writerow([json.dumps(r[k]) if isinstance(r.get(k), (list, dict)) else r.get(k, "") for k in keys])

