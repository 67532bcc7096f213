"""`samband alerts`: the alerts process, and acknowledging or listing alerts from a shell."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from argparse import Namespace
from typing import TYPE_CHECKING

from samband.errors import SambandError
from samband.paths import default_db

if TYPE_CHECKING:
    from samband.receiver.store import Store


def _store(db: str | None, create: bool) -> Store:
    from samband.receiver.store import StoreError, open_store
    try:
        return open_store(db or default_db(), create=create)
    except StoreError as e:
        raise SambandError(f"{e}: give --db the database `samband receive` writes") from None


def cmd_alerts(args: Namespace) -> None:
    if args.action == "ack":
        return cmd_ack(args)
    if args.action == "list":
        return cmd_list(args)
    if not args.rules:
        raise SambandError("samband alerts needs --rules FILE (the responder groups and routes; docs/alerts.md)")
    import logging

    from samband.receiver import alerts_rules
    from samband.receiver.alerts import Engine
    from samband.receiver.alerts_channels import Dispatcher
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rules = alerts_rules.load(args.rules)
    store = _store(args.db, create=False)
    dispatcher = Dispatcher(rules)
    engine = Engine(store, rules, dispatcher)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    if args.seconds:
        threading.Timer(args.seconds, stop.set).start()
    print(f"samband alerts: database {args.db or default_db()}, rules {args.rules}, "
          f"{len(rules.groups)} groups, {len(rules.routes)} routes", flush=True)
    try:
        engine.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        dispatcher.close(wait=True)
        engine.record_deliveries()
        store.close()
        print("samband alerts: " + ", ".join(f"{k} {v}" for k, v in sorted(engine.counters.items())), flush=True)


def cmd_ack(args: Namespace) -> None:
    from samband.receiver.alerts_db import AlertError, ack
    store = _store(args.db, create=False)
    try:
        a = ack(store, args.id, args.by)
    except AlertError as e:
        raise SambandError(str(e)) from None
    finally:
        store.close()
    print(f"alert {a['id']} ({a['kind']}, {a['hub']}) acknowledged by {a['acked_by']}")


def cmd_list(args: Namespace) -> None:
    from samband.receiver.alerts_db import created, list_alerts
    store = _store(args.db, create=False)
    try:
        if not created(store):
            raise SambandError("no alerts in this database yet: `samband alerts --rules FILE` creates them")
        rows = list_alerts(store, open_only=args.open)
    finally:
        store.close()
    if args.json:
        json.dump(rows, sys.stdout)
        print()
        return
    for a in rows:
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["first_seen"]))
        state = ("cleared" if a["cleared"] else "ACTIVE") + (f", acked by {a['acked_by']}" if a["acked_by"] else
                                                            f", with {a['grp'] or 'no one'}")
        print(f"{a['id']:>5} {t} {a['severity']:<8} {a['kind']:<15} {a['patient'] or a['hub']} "
              f"{a['device'] or ''} {a['detail'].get('text', '')} [{state}]")
