"""Reading a (virtual) hub's journal on the host: `samband journal --flash DIR`.

Copies the journal off a virtual hub's flash image (vhub/flash.py) and opens
it with the firmware's own module (hub.journal under CPython); given the
depot, opens every sealed record as the receiver would. For tests, audits
and field forensics. A running hub's image is read through its snapshot
(VirtualHub.snapshot(), passed in as the flash), never directly."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.device.depot import Depot
    from samband.vhub.flash import Flash

# One record of the journal: (seq, prio, reading map or None, error or None).
Record = tuple[int, int, dict[int, Any] | None, str | None]


class Reader:
    """Opens a hub's sealed journal on the host, incrementally: each call to
    new() returns the records appended since the last call. Works on a copy
    of the journal, so a running (virtual) hub is never disturbed.

    `flash` is a flash folder, a Flash, or a callable returning one (e.g. a
    running hub's `snapshot`, called afresh for each new())."""

    def __init__(self, flash: Flash | str | Path, depot: Depot, hub_id: bytes = b"\x00\x00\x5a\x4d\x00\x01") -> None:
        self.flash = flash
        self.hub_id = hub_id
        self.opener = depot.opener()
        self.epochs = set()
        self.last = -1

    def new(self, only_pending: bool = False) -> list[Record]:
        """[(seq, prio, reading map or None, error)] for records after the last seen, oldest first."""
        from hub import reading
        from hub.journal import Journal
        from samband.receiver.opener import Rejected
        from samband.vhub.flash import as_flash
        flash = as_flash(self.flash() if callable(self.flash) else self.flash)
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "journal"
            with flash.view() as m:
                if not m.is_dir("/journal"):
                    raise SambandError(f"no journal on {flash.image}")
                for p in m.listing("/journal"):
                    out_path = copy / p[len("/journal/"):]
                    out_path.parent.mkdir(parents=True, exist_ok=True)
                    out_path.write_bytes(m.read(p))
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

    def _epoch(self, header: bytes, quiet: type[BaseException] | None) -> None:
        if header in self.epochs:
            return
        try:
            self.opener.open_epoch(self.hub_id, header)
            self.epochs.add(header)
        except Exception as e:  # noqa: BLE001 - Rejected; raised unless asked to be quiet
            if quiet is None or not isinstance(e, quiet):
                raise


def readings(flash: Flash | str | Path, depot: Depot, hub_id: bytes = b"\x00\x00\x5a\x4d\x00\x01",
             only_pending: bool = False) -> list[Record]:
    """[(seq, prio, reading map or None, error)] for every record on flash, oldest first."""
    return Reader(flash, depot, hub_id).new(only_pending)
