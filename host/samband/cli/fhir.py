"""`samband fhir`: stored readings as HL7 PHD IG transaction bundles, to stdout, to
files, or POSTed to a FHIR server (receiver/fhir.py builds them)."""

from __future__ import annotations

import re
import sys
import time
from argparse import Namespace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.receiver.store import Store

_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_when(text: str, now_ms: int) -> int:
    """A time for --since/--until as ms since 1970 UTC: '10m', '2h', '1d', '30s' (that
    long ago), a whole number (ms since 1970), or an ISO date/time ('2026-12-01',
    '2026-12-01T10:00:00Z'; without a zone: UTC). SambandError when it is none of these."""
    t = text.strip()
    m = re.fullmatch(r"(\d+)\s*([smhd])", t)
    if m:
        return now_ms - int(m.group(1)) * _UNITS[m.group(2)]
    if re.fullmatch(r"\d+", t):
        return int(t)
    from datetime import datetime, timezone
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise SambandError(f"time {text!r}: want a duration like 10m, 2h, 1d, ms since 1970, "
                           f"or an ISO date like 2026-12-01T10:00:00Z") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return int(d.timestamp() * 1000)


def cmd_fhir(args: Namespace) -> None:
    from samband.cli.receiver import existing_store
    from samband.receiver import fhir, live, patients
    from samband.receiver.store import device_infos
    now = int(time.time() * 1000)
    since = parse_when(args.since, now) if args.since else None
    until = parse_when(args.until, now) if args.until else None
    patient = patients.parse_token(args.patient) if args.patient else None
    hub = patients.check_hub(args.hub) if args.hub else None
    store = existing_store(args.db)
    try:
        links = patients.links(store)
        rows = _selected(store, live, patients, args, hub, patient, since, until)
        infos = device_infos(store, hub, args.device)
    finally:
        store.close()
    unlinked = patients.attribute(rows, links)
    ex = fhir.export(rows, infos, test=args.test, max_observations=args.max_observations)
    made = there = 0
    if args.post:
        from samband.receiver.fhir_post import created_counts, post_bundle
        auth = _authorization(args.authorization_file) if args.authorization_file else None
        for i, b in enumerate(ex.bundles):
            try:
                m, t = created_counts(post_bundle(args.post, b, tries=args.tries, authorization=auth))
            except fhir.FhirError as e:
                raise SambandError(f"bundle {i + 1} of {len(ex.bundles)}: {e}; {i} posted before it "
                                   f"({made} resources created); posting again is safe: nothing is created twice"
                                   ) from None
            made, there = made + m, there + t
    if args.out and args.out != "-":
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            for i, b in enumerate(ex.bundles):
                (out / f"bundle-{i + 1:04d}.json").write_text(fhir.to_json(b) + "\n", encoding="utf-8")
        except OSError as e:
            raise SambandError(f"--out {out}: {e.strerror}") from None
    elif not args.post or args.out == "-":
        for b in ex.bundles:
            sys.stdout.write(fhir.to_json(b) + "\n")
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(ex.skipped.items()))
    summary = (f"samband fhir: {len(rows)} readings -> {len(ex.bundles)} bundles, {ex.observations} observations"
               + (f" ({ex.derived} of them glucose sample locations)" if ex.derived else "")
               + (f"; {unlinked} readings of no linked patient (device as subject)" if unlinked and links else "")
               + (f"; posted: {made} created, {there} already there" if args.post else "")
               + (f"; left out: {skipped}" if skipped else ""))
    print(summary, file=sys.stderr)


def _selected(store: Store, live: ModuleType, patients: ModuleType, args: Namespace, hub: str | None,
              patient: tuple[str, str] | None, since: int | None, until: int | None) -> list[dict[str, Any]]:
    """The readings to export: a patient's (the hubs linked to them, while they
    were), or by hub/device/time; with --latest only the newest of each kind."""
    if patient is not None:
        spans = [sp for sp in live.patient_spans(store, patient, since, until) if hub is None or sp[0] == hub]
        rows = live.latest(store, spans) if args.latest else live.history(store, spans)
        return [r for r in rows if args.device is None or r.get("dev") == args.device]
    if args.latest:
        hubs = [hub] if hub is not None else [h["hub"] for h in store.hubs()]
        lo = -patients.FOREVER if since is None else since
        hi = patients.FOREVER if until is None else until
        rows = [r for h in hubs for r in live.latest(store, [(h, lo, hi)])]  # each hub's own newest
        return [r for r in rows if args.device is None or r.get("dev") == args.device]
    return store.readings(hub, args.device, None, since, until)


def _authorization(path: str) -> str:
    """The Authorization header value from a file ('Bearer <token>' or 'Basic <base64>'):
    never on the command line, where other users see it."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise SambandError(f"--authorization-file {path}: {e.strerror}") from None
    if not text or "\n" in text or " " not in text:
        raise SambandError(f"--authorization-file {path}: want one line like 'Bearer <token>' or 'Basic <base64>'")
    return text
