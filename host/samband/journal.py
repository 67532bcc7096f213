"""Reading a (virtual) hub's journal on the host: `samband journal --flash DIR`.

Opens a copy of the journal in a flash folder with the firmware's own
module (hub.journal under CPython) and, given the depot, opens every
sealed record as the receiver would. For tests, audits and field
forensics on a hub's flash image; never run it on a live hub's folder
(it works on a copy, so it cannot disturb one)."""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from samband.errors import SambandError


class Reader:
    """Opens a hub's sealed journal on the host, incrementally: each call to
    new() returns the records appended since the last call. Works on a copy
    of the journal folder, so a running (virtual) hub is never disturbed."""

    def __init__(self, flash, depot, hub_id=b"\x00\x00\x5a\x4d\x00\x01"):
        self.src = Path(flash) / "journal"
        self.hub_id = hub_id
        self.opener = depot.opener()
        self.epochs = set()
        self.last = -1

    def new(self, only_pending=False):
        """[(seq, prio, reading map or None, error)] for records after the last seen, oldest first."""
        from hub import reading
        from hub.journal import Journal
        from samband.seal import Rejected
        if not self.src.is_dir():
            raise SambandError(f"no journal in {self.src.parent}")
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "journal"
            shutil.copytree(self.src, copy)
            j = Journal(root=str(copy), capacity=16 * 1024 * 1024)
            for ctx in j.contexts():
                self._epoch(bytes(ctx), Rejected)
            rows = j.pending(after=self.last) if only_pending else j.records(after=self.last)
            for seq, prio, data, ctx in rows:
                try:
                    if ctx is not None:
                        self._epoch(bytes(ctx), None)
                    opened = self.opener.open(self.hub_id, bytes(data))
                    out.append((seq, prio, reading.decode(opened.plaintext), None))
                except (Rejected, ValueError) as e:
                    out.append((seq, prio, None, str(e)))
                self.last = max(self.last, seq)
            j.close()
        return out

    def _epoch(self, header, quiet):
        if header in self.epochs:
            return
        try:
            self.opener.open_epoch(self.hub_id, header)
            self.epochs.add(header)
        except Exception as e:  # noqa: BLE001 - Rejected; raised unless asked to be quiet
            if quiet is None or not isinstance(e, quiet):
                raise


def readings(flash, depot, hub_id=b"\x00\x00\x5a\x4d\x00\x01", only_pending=False):
    """[(seq, prio, reading map or None, error)] for every record on flash, oldest first."""
    return Reader(flash, depot, hub_id).new(only_pending)


def cmd_journal(args):
    from hub import reading
    from samband.depot import Depot
    rows = readings(args.flash, Depot(args.depot, create=False), bytes.fromhex(args.uid), args.pending)
    for seq, prio, r, err in rows:
        if args.json:
            print(json.dumps({"seq": seq, "prio": prio, "reading": reading.to_named(r) if r else None, "error": err},
                             default=lambda b: b.hex()))
        else:
            print(f"{seq:8d} p{prio} " + (json.dumps(reading.to_named(r), default=lambda b: b.hex()) if r else f"ERROR {err}"))
    print(f"{len(rows)} records", file=sys.stderr)


def add_parser(sub):
    p = sub.add_parser("journal", help="open and list the sealed readings in a hub's flash folder (needs the depot)")
    p.add_argument("--flash", type=Path, required=True, help="a (virtual) hub's flash folder or image copy")
    p.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    p.add_argument("--uid", default="00005a4d0001", help="the hub's unique id in hex")
    p.add_argument("--pending", action="store_true", help="only records not yet acknowledged")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_journal)
