"""Opening the hub's sealed records and batches on the receiver, with pynacl.

The format belongs to the firmware (firmware/hub/seal.py, described in
docs/protocol.md); this module imports its constants and codecs and adds
the opening (pynacl) and the receiver's bookkeeping. An Opener holds the
receiver's secret keys, the registry of hub public keys (with revoked
ones) and, per hub, the epochs it has seen and the sequence numbers it has
accepted. Everything it refuses raises Rejected with a reason from
REASONS, counted in Opener.counters.

What the depot makes with its authority key (hub provisioning files,
authenticated receiver-key configs) is samband.device.authority.Authority.
"""

from __future__ import annotations

import bisect
import hmac
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from nacl import bindings as nb
from nacl.exceptions import CryptoError

# The format is the firmware's (firmware/hub/seal.py): its constants, the record nonce,
# the epoch and config tags, the batch codec and the config parser are imported, not
# copied; only opening (pynacl) and the receiver's bookkeeping live here.
from hub import seal
from hub.seal import (  # noqa: F401 (re-exported: the receiver's names for the format)
    CONFIG_LABEL,
    EPOCH_BYTES,
    EPOCH_LABEL,
    MAX_BATCH_BYTES,
    MAX_BATCH_ITEMS,
    MAX_RECEIVERS,
    MAX_SPAN,
    RECORD_HEADER,
    RECORD_OVERHEAD,
    SEQ_MAX,
    V_BATCH,
    V_CONFIG,
    V_EPOCH,
    V_RECORD,
    VERSION,
    batch,
    config_tag,
    epoch_tag,
    parse_config,
    read_len,
    record_nonce,
)
from samband.errors import SambandError

REASONS = (
    "version",        # a format version this receiver does not know
    "malformed",      # too short, wrong kind, lengths that do not add up
    "unknown-hub",    # no public key registered for the hub
    "revoked",        # the hub's key is revoked
    "wrong-key",      # sealed to a receiver key we do not hold (or retired)
    "forged",         # epoch header not made with the hub's key, or an epoch number reused
    "unknown-epoch",  # a record whose epoch header has not been seen
    "tampered",       # the record does not authenticate (bit flips, splicing, wrong epoch)
    "replayed",       # a sequence number already accepted from this hub
    "reordered",      # a record out of order within a batch
    "oversized",      # a batch beyond MAX_BATCH_BYTES or MAX_BATCH_ITEMS
    "out-of-range",   # a seq (epoch base, or base + offset) above SEQ_MAX
)


class Rejected(SambandError, ValueError):
    """Input the receiver refuses; .reason is one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def unbatch(data: bytes) -> list[bytes]:
    """The items of a batch, or Rejected for the batch as a whole (nothing
    of it is opened): "version" for another format version, "oversized"
    (the firmware's BatchLimit: bytes or items), "malformed" for the rest
    (truncated, over 3 bytes, not minimal, past the end). The decoding is
    the firmware's seal.unbatch; this only names the reason."""
    if not data:
        raise Rejected("malformed", "empty batch")
    if data[0] >> 4 != VERSION:
        raise Rejected("version", f"batch of format version {data[0] >> 4}, this receiver reads {VERSION}")
    try:
        return seal.unbatch(data)
    except seal.BatchLimit as e:
        raise Rejected("oversized", str(e)) from None
    except seal.SealError as e:
        raise Rejected("malformed", str(e)) from None


class Seen:
    """Accepted sequence numbers as sorted, disjoint [lo, hi] intervals."""

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self.lo = [a for a, _ in spans]
        self.hi = [b for _, b in spans]

    def __contains__(self, n: int) -> bool:
        i = bisect.bisect_right(self.lo, n) - 1
        return i >= 0 and n <= self.hi[i]

    def add(self, n: int) -> None:
        i = bisect.bisect_right(self.lo, n) - 1
        if i >= 0 and n <= self.hi[i]:
            return
        if i >= 0 and self.hi[i] == n - 1:
            self.hi[i] = n
        else:
            i += 1
            self.lo.insert(i, n)
            self.hi.insert(i, n)
        if i + 1 < len(self.lo) and self.lo[i + 1] == self.hi[i] + 1:
            self.hi[i] = self.hi.pop(i + 1)
            self.lo.pop(i + 1)

    def discard(self, n: int) -> None:
        i = bisect.bisect_right(self.lo, n) - 1
        if i < 0 or n > self.hi[i]:
            return
        lo, hi = self.lo[i], self.hi[i]
        if lo == hi:
            del self.lo[i], self.hi[i]
        elif n == lo:
            self.lo[i] = n + 1
        elif n == hi:
            self.hi[i] = n - 1
        else:
            self.hi[i] = n - 1
            self.lo.insert(i + 1, n + 1)
            self.hi.insert(i + 1, hi)

    @property
    def highest(self) -> int | None:
        return self.hi[-1] if self.hi else None

    def spans(self) -> list[tuple[int, int]]:
        return list(zip(self.lo, self.hi))


@dataclass
class Epoch:
    hub_id: bytes
    number: int
    base: int
    kid: int
    public: bytes
    header: bytes
    key: bytes = field(repr=False)


@dataclass
class Opened:
    hub_id: bytes
    epoch: int
    seq: int
    plaintext: bytes
    late: bool = False  # an older sequence number than one already accepted (detected, not refused)


@dataclass
class BatchResult:
    opened: list
    epochs: list
    rejected: list  # (item index, Rejected)


@dataclass
class _Hub:
    public: bytes
    revoked: bool = False
    epochs: dict = field(default_factory=dict)  # number -> Epoch
    seen: Seen = field(default_factory=Seen)


class Opener:
    """The receiver's side: opens epoch headers, records and batches of many hubs."""

    def __init__(self, receiver_keys: Mapping[int, bytes] | None = None, hubs: Mapping[bytes, bytes] | None = None,
                 revoked: Iterable[bytes] = ()) -> None:
        self.keys = {}  # key id -> secret key
        self.hubs = {}
        self.counters = Counter({r: 0 for r in REASONS})
        self.counters.update({"opened": 0, "epochs": 0, "late": 0})
        for kid, sk in (receiver_keys or {}).items():
            self.add_receiver_key(kid, sk)
        for hub_id, pk in (hubs or {}).items():
            self.register_hub(hub_id, pk)
        for hub_id in revoked:
            self.revoke(hub_id)

    # -- keys and registry ----------------------------------------------------
    def add_receiver_key(self, kid: int, secret: bytes) -> None:
        if not 0 <= kid <= 255 or len(secret) != 32:
            raise ValueError("receiver key: id 0..255 and a 32-byte secret")
        self.keys[kid] = bytes(secret)

    def retire_receiver_key(self, kid: int) -> None:
        """Forget a receiver secret (after its backlog is drained): its epochs become unreadable."""
        self.keys.pop(kid, None)
        for hub in self.hubs.values():
            for ep in hub.epochs.values():
                if ep.kid == kid:
                    ep.key = b""

    def register_hub(self, hub_id: bytes, public: bytes) -> None:
        """Know a hub by its public key. A new key for a known hub (re-provisioned)
        replaces the old one, with its epochs and its revocation; the seqs stay."""
        if len(public) != 32:
            raise ValueError("hub public key must be 32 bytes")
        hub = self.hubs.get(bytes(hub_id))
        if hub and hub.public != public:
            # a new key for the hub (re-provisioned): its old epochs go
            self.hubs[bytes(hub_id)] = _Hub(bytes(public), seen=hub.seen)
        elif not hub:
            self.hubs[bytes(hub_id)] = _Hub(bytes(public))

    def revoke(self, hub_id: bytes) -> None:
        """Refuse everything from this hub key from now on (stolen or retired hub)."""
        hub = self.hubs.get(bytes(hub_id))
        if hub is None:
            hub = self.hubs[bytes(hub_id)] = _Hub(bytes(32))
        hub.revoked = True

    # -- opening --------------------------------------------------------------
    def _reject(self, reason: str, message: str) -> NoReturn:
        self.counters[reason] += 1
        raise Rejected(reason, message)

    def _hub(self, hub_id: bytes) -> _Hub:
        hub = self.hubs.get(bytes(hub_id))
        if hub is None:
            self._reject("unknown-hub", f"hub {bytes(hub_id).hex()} is not registered")
        if hub.revoked:
            self._reject("revoked", f"hub {bytes(hub_id).hex()} is revoked")
        return hub

    def _kind(self, data: bytes, kind: int, what: str) -> None:
        if not data:
            self._reject("malformed", f"empty {what}")
        if data[0] >> 4 != VERSION:
            self._reject("version", f"{what} of format version {data[0] >> 4}, this receiver reads {VERSION}")
        if data[0] != kind:
            self._reject("malformed", f"first byte {data[0]:#04x} is not a {what}")

    def open_epoch(self, hub_id: bytes, header: bytes) -> Epoch:
        """Check an epoch header and remember its key; returns the Epoch."""
        hub_id, header = bytes(hub_id), bytes(header)
        self._kind(header, V_EPOCH, "epoch header")
        if len(header) != EPOCH_BYTES:
            self._reject("malformed", f"epoch header of {len(header)} bytes, not {EPOCH_BYTES}")
        hub = self._hub(hub_id)
        _, kid, number, base = struct.unpack(">BBIQ", header[:14])
        public = header[14:46]
        if kid not in self.keys:
            self._reject("wrong-key", f"epoch {number} is sealed to receiver key {kid}, which we do not hold")
        known = hub.epochs.get(number)
        if known is not None and known.header == header and known.key:
            return known
        try:
            kauth = nb.crypto_box_beforenm(hub.public, self.keys[kid])
        except CryptoError:
            self._reject("forged", "the registered hub key has small order")
        if not hmac.compare_digest(epoch_tag(kauth, hub_id, header[:46]), header[46:]):
            self._reject("forged", f"epoch {number} header is not authenticated by hub {hub_id.hex()}")
        if base > SEQ_MAX:  # authentic, but no hub of this format seals it (seal.py)
            self._reject("out-of-range", f"epoch {number} base {base} is above {SEQ_MAX}")
        if known is not None and known.header != header:
            self._reject("forged", f"epoch {number} already seen with another ephemeral key: "
                                   "the hub key is used elsewhere (stolen?) or the hub reused an epoch")
        try:
            key = nb.crypto_box_beforenm(public, self.keys[kid])
        except CryptoError:
            self._reject("forged", f"epoch {number} has an ephemeral key of small order")
        ep = Epoch(hub_id, number, base, kid, public, header, key)
        hub.epochs[number] = ep
        self.counters["epochs"] += 1
        return ep

    def _authenticate(self, hub_id: bytes, record: bytes) -> tuple[_Hub, Epoch, int, bytes]:
        self._kind(record, V_RECORD, "record")
        if len(record) < RECORD_OVERHEAD:
            self._reject("malformed", f"record of {len(record)} bytes is shorter than its "
                                      f"{RECORD_OVERHEAD}-byte overhead")
        hub = self._hub(hub_id)
        tag, offset = record[1], struct.unpack(">H", record[2:4])[0]
        candidates = sorted((ep for n, ep in hub.epochs.items() if n & 0xFF == tag), key=lambda e: -e.number)
        if not candidates:
            self._reject("unknown-epoch", f"no epoch ending in {tag:#04x} known for hub {hub_id.hex()}")
        if all(not ep.key for ep in candidates):
            self._reject("wrong-key", "the record's epoch is sealed to a retired receiver key")
        sealed = record[RECORD_HEADER:]
        for ep in candidates:
            if not ep.key:
                continue
            seq = ep.base + offset
            if seq > SEQ_MAX:
                continue  # no hub seals it (seal.py): counted below as out-of-range if nothing opens
            try:
                plain = nb.crypto_box_open_easy_afternm(sealed, record_nonce(ep.kid, ep.number, seq), ep.key)
            except CryptoError:
                continue
            return hub, ep, seq, plain
        if all(ep.base + offset > SEQ_MAX for ep in candidates if ep.key):
            self._reject("out-of-range", f"record (epoch tag {tag:#04x}, offset {offset}) has a seq above {SEQ_MAX}")
        self._reject("tampered", f"record (epoch tag {tag:#04x}, offset {offset}) does not authenticate")

    def _accept(self, hub: _Hub, hub_id: bytes, ep: Epoch, seq: int, plain: bytes,
                after: int | None = None) -> Opened:
        if seq in hub.seen:
            self._reject("replayed", f"hub {hub_id.hex()} seq {seq} was already accepted")
        if after is not None and seq <= after:
            self._reject("reordered", f"seq {seq} after {after} in one batch (a batch is sealed in order)")
        late = hub.seen.highest is not None and seq < hub.seen.highest
        hub.seen.add(seq)
        self.counters["opened"] += 1
        if late:
            self.counters["late"] += 1
        return Opened(hub_id, ep.number, seq, plain, late)

    def open(self, hub_id: bytes, record: bytes) -> Opened:
        """Open one sealed record of a hub whose epoch header was opened before; returns Opened."""
        hub_id, record = bytes(hub_id), bytes(record)
        return self._accept_record(hub_id, record)

    def _accept_record(self, hub_id: bytes, record: bytes, after: int | None = None) -> Opened:
        hub, ep, seq, plain = self._authenticate(hub_id, record)
        return self._accept(hub, hub_id, ep, seq, plain, after)

    def forget(self, hub_id: bytes, seqs: Iterable[int]) -> None:
        """Un-accept seqs whose readings could not be stored (the database
        failed): when the hub sends them again they are opened again instead
        of being refused as replays and never stored."""
        hub = self.hubs.get(bytes(hub_id))
        if hub is not None:
            for q in seqs:
                hub.seen.discard(q)

    def open_batch(self, hub_id: bytes, data: bytes) -> BatchResult:
        """Open a batch: epoch headers and records, records in rising seq order.

        Returns BatchResult; a malformed or wrong-version batch raises Rejected."""
        hub_id = bytes(hub_id)
        try:
            items = unbatch(data)
        except Rejected as e:
            self.counters[e.reason] += 1
            raise
        res = BatchResult([], [], [])
        last = None
        try:
            for i, item in enumerate(items):
                try:
                    if item[:1] == bytes((V_EPOCH,)):
                        res.epochs.append(self.open_epoch(hub_id, item))
                        continue
                    o = self._accept_record(hub_id, item, last)
                    last = o.seq
                    res.opened.append(o)
                except Rejected as e:
                    res.rejected.append((i, e))
        except BaseException:
            # Whatever stops a batch half way leaves none of it accepted, so that
            # its records are opened (not refused as replays) when it comes again.
            self.forget(hub_id, [o.seq for o in res.opened])
            raise
        return res

    # -- persistence ----------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The per-hub state (epochs, accepted seqs, revocations) as JSON-able data; keys not included."""
        return {h.hex(): {"public": hub.public.hex(), "revoked": hub.revoked,
                          "epochs": [e.header.hex() for e in hub.epochs.values()],
                          "seen": hub.seen.spans()}
                for h, hub in self.hubs.items()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        for h, s in state.items():
            hub_id = bytes.fromhex(h)
            hub = self.hubs[hub_id] = _Hub(bytes.fromhex(s["public"]), s["revoked"], seen=Seen(s["seen"]))
            for hx in s["epochs"]:
                header = bytes.fromhex(hx)
                _, kid, number, base = struct.unpack(">BBIQ", header[:14])
                key = b""
                if kid in self.keys:
                    key = nb.crypto_box_beforenm(header[14:46], self.keys[kid])
                hub.epochs[number] = Epoch(hub_id, number, base, kid, header[14:46], header, key)
