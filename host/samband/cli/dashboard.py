"""`samband dashboard`: serve the clinician dashboard, or add a user to its users file."""

import getpass
import os
import sys
from argparse import Namespace
from typing import Any

from samband.errors import SambandError
from samband.paths import default_db


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:8080' -> ('127.0.0.1', 8080); '[::1]:8080' for IPv6; port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise SambandError(f"--listen wants HOST:PORT, e.g. 127.0.0.1:8080, not {text!r}")
    try:
        p = int(port)
    except ValueError:
        p = -1
    if not 0 <= p <= 65535:
        raise SambandError(f"--listen: {port!r} is not a port number")
    return host.strip("[]"), p


def _secret(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
    except OSError as e:
        raise SambandError(f"cannot read the secret file {path}: {e.strerror}") from None
    if len(key) < 32:
        raise SambandError(f"the secret file {path} holds fewer than 32 bytes")
    return key


def make_server(args: Namespace) -> tuple[Any, Any, str, int]:
    """The dashboard's waitress server (not yet running), its application and address."""
    import waitress

    from samband.receiver.dashboard import users
    from samband.receiver.dashboard.app import create_app
    from samband.receiver.dashboard.data import Reader
    from samband.receiver.store import StoreError
    if not args.users:
        raise SambandError("samband dashboard needs --users FILE (add users with samband dashboard adduser)")
    table = users.load(args.users)
    db = args.db or default_db()
    try:
        Reader(db).close()  # fail now, in one line, not at the first page
    except StoreError as e:
        raise SambandError(f"{e}: give --db the database `samband receive` writes") from None
    host, port = parse_listen(args.listen)
    patients = {}
    if args.rules:
        from samband.receiver import alerts_rules
        patients = alerts_rules.load(args.rules).patients
    app = create_app(db, table, secret_key=_secret(args.secret_file), offline_s=args.offline_s,
                     glucose_unit=args.glucose_unit, patients=patients)
    try:
        server = waitress.create_server(app, host=host, port=port, threads=8, ident="samband")
    except OSError as e:
        raise SambandError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return server, app, f"http://{host}:{server.effective_port}/", len(table)


def _interrupt(*args: object):
    """SIGTERM ends the server as Ctrl-C does: closed, counters printed."""
    raise KeyboardInterrupt


def cmd_dashboard(args: Namespace) -> None:
    if args.action == "adduser":
        return cmd_adduser(args)
    import logging
    import signal
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server, app, url, n = make_server(args)
    print(f"samband dashboard: {url} (database {args.db or default_db()}, {n} users)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        counters = app.config["counters"]
        print("samband dashboard: " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())), flush=True)


def cmd_adduser(args: Namespace) -> None:
    from samband.receiver.dashboard import users
    if sys.stdin.isatty():
        pw = getpass.getpass(f"password for {args.name}: ")
        if pw != getpass.getpass("again: "):
            raise SambandError("the two passwords differ")
    else:
        pw = sys.stdin.readline().rstrip("\n")
    if os.path.exists(args.users):
        table = users.load(args.users)
        if args.name in table:
            raise SambandError(f"{args.users} has a user {args.name} already")
    text = users.entry(args.name, args.role, pw)
    fd = os.open(args.users, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)
    print(f"samband dashboard: {args.name} ({args.role}) added to {args.users}")
