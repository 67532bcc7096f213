"""`samband ota stage|watch|stop`: an update over the air for chosen hubs; `samband hubs`: which hub runs
what, from the receiver's database (docs/ota.md)."""

import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from samband.errors import SambandError


def login_of(args: Namespace) -> dict[str, Any]:
    """The broker login of --host/--port/--ca/--user/--password(-file) (also `samband config push`)."""
    from samband.cli.receiver import readable
    if args.ca is not None:
        readable(args.ca, "--ca", "the broker's CA certificate (PEM)")
    password = args.password
    if args.password_file:
        password = readable(args.password_file, "--password-file", "the MQTT password").strip()
    return dict(host=args.host, port=args.port, ca=args.ca, user=args.user, password=password)


def _hubs(args: Namespace):
    return [_hub(h) for h in args.hub]


def _hub(h: str) -> str:
    h = h.lower()
    if len(h) < 2 or len(h) % 2 or any(c not in "0123456789abcdef" for c in h):
        raise SambandError(f"--hub {h}: a hub id is its unique id in hex, e.g. 00005a4d0001")
    return h


def cmd_ota_stage(args: Namespace) -> None:
    """Offer the release to the hubs, serve their chunk requests and print each hub's progress
    until every one runs it (then withdraw the offer) or --timeout passes (exit 1, offer kept)."""
    from samband.device.ota import Rollout, progress_text
    try:
        data = Path(args.release).read_bytes()
    except OSError as e:
        raise SambandError(f"{args.release}: {e.strerror}") from None
    hubs = _hubs(args)
    r = Rollout(data, hubs, chunk=args.chunk, on_progress=lambda h, st: print(progress_text(h, st), flush=True),
                url=args.url, **login_of(args))
    r.start()
    print(f"samband ota: {args.release} ({r.version}, {len(r.parts)} chunks of {r.chunk} bytes) offered to "
          f"{len(hubs)} hub(s)", flush=True)
    try:
        ok = r.wait(args.timeout)
    except KeyboardInterrupt:
        ok = False
    if ok:
        r.clear()
    for h in hubs:
        print(f"{h}: {'runs ' + r.version if r.runs_it(h) else 'not yet'}, {r.sent[h]} chunk bytes sent")
    r.close()
    if not ok:
        print("samband ota: not every hub runs it yet; the offer stays on the broker "
              "(`samband ota stage` again to watch, `samband ota stop` to end it)", file=sys.stderr)
        sys.exit(1)


def cmd_ota_watch(args: Namespace) -> None:
    """Print each hub's update state and version whenever it changes (every hub, or --hub ones)."""
    import time

    from samband.device.ota import Fleet, progress_text
    hubs = _hubs(args) if args.hub else None
    f = Fleet(hubs, on_progress=lambda h, st: print(progress_text(h, st), flush=True), **login_of(args)).start()
    try:
        end = time.monotonic() + args.seconds if args.seconds else None
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        f.close()


def cmd_ota_stop(args: Namespace) -> None:
    """Withdraw an offer: the hubs drop what they fetched (a trial under way still ends in a
    confirmation or a roll-back)."""
    from samband.device.ota import stop
    hubs = _hubs(args)
    stop(hubs, **login_of(args))
    print(f"samband ota: stop sent to {len(hubs)} hub(s)")


def cmd_hubs(args: Namespace) -> None:
    """`samband hubs`: what each hub runs (version, slot, update state) and its last contact, from
    the receiver's database; --history: when each hub changed version."""
    import json
    import time

    from samband.cli.receiver import existing_store
    from samband.receiver import versions
    if args.hub is not None and not args.history:
        raise SambandError("--hub goes with --history (the fleet table lists every hub)")
    store = existing_store(args.db)
    try:
        rows = versions.history(store, _hub(args.hub) if args.hub else None) if args.history \
            else versions.fleet(store)
    finally:
        store.close()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    elif not rows:
        print("no version changes recorded" if args.history else "no hub has reported yet", file=sys.stderr)
    elif args.history:
        for r in rows:
            print(f"{r['hub']}  {versions.utc_text(r['since'])}  {r['previous'] or '(first report)'} -> "
                  f"{r['version']}")
    else:
        for line in versions.fleet_table(rows, time.time()):
            print(line)
