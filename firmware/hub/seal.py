# Sealed records: how readings are kept on flash and sent to the receiver.
# The format is the firmware's; docs/protocol.md describes it and the
# threat model; the receiver (host/samband/receiver/opener.py) imports its
# constants, nonces, tags and batch codec and opens records with pynacl.
#
# Per epoch (at least one per boot) the hub draws an ephemeral X25519 key
# pair e/E. Its secret lives in RAM only; the epoch key is
# crypto_box_beforenm(receiver's public key, e), so only the receiver can
# open the epoch's records, and a stolen hub cannot open its own backlog.
# The epoch header binds E to the hub's static key h (provisioned at the
# depot) with an HMAC under crypto_box_beforenm(receiver, h).
#
#   epoch header (62 bytes)          record (20 bytes + the plaintext)
#   0    0x11 version 1, epoch       0     0x10 version 1, record
#   1    receiver key id             1     epoch number & 0xFF
#   2:6  epoch number, u32 BE        2:4   seq - epoch base, u16 BE
#   6:14 base seq, u64 BE            4:20  Poly1305 tag
#   14:46 E                          20:   XSalsa20 ciphertext
#   46:62 HMAC-SHA256(...)[:16]
#
# A record's nonce is derived from (receiver key id, epoch number, seq),
# never stored. It never repeats under one key: seq rises strictly within
# an epoch (seal() refuses anything else), and epoch numbers come from a
# counter that is persisted before an epoch seals anything, so even two
# epochs with the same key (a broken RNG) have different nonces.

import os
import struct

import hub
from hub.crypto import CryptoError, box, hmac
from hub.errors import HubError

VERSION = 1
V_RECORD = 0x10
V_EPOCH = 0x11
V_CONFIG = 0x12
V_BATCH = 0x13
RECORD_HEADER = 4
RECORD_OVERHEAD = 20  # header + Poly1305 tag
EPOCH_BYTES = 62
MAX_SPAN = 0xFFFF  # seq offsets within one epoch
MAX_RECEIVERS = 4
EPOCH_LABEL = b"samband/epoch/1"
CONFIG_LABEL = b"samband/config/1"
_EPOCH_MAX = 0xFFFFFFFF
# Bounds of the wire format (docs/protocol.md, "Limits"). The receiver's
# database holds seqs in signed 64-bit columns, so the hub never seals a
# seq above SEQ_MAX and the receiver refuses one (a flipped offset bit on
# top of a high epoch base must be refused, not overflow). A batch is at
# most MAX_BATCH_BYTES bytes and MAX_BATCH_ITEMS items (epoch headers and
# records); an item length is LEB128 in at most LEB_MAX_BYTES bytes,
# minimal (no trailing 0x80 groups), so one batch has one encoding.
SEQ_MAX = 2 ** 63 - 1
MAX_BATCH_BYTES = 65536
MAX_BATCH_ITEMS = 1024
LEB_MAX_BYTES = 3


class SealError(HubError):
    """A record that cannot be sealed, or a key or config the hub refuses."""


class BatchLimit(SealError):
    """A batch beyond MAX_BATCH_BYTES or MAX_BATCH_ITEMS: its own class so the
    receiver (which reads batches with unbatch()) can tell "oversized" from
    "malformed" without reading the message."""


def record_nonce(kid, epoch, seq):
    """The 24-byte XSalsa20 nonce of record seq of an epoch (never stored).

    The first 16 bytes (HSalsa20's input) are the epoch's, the last 8 the
    sequence number: the hub derives one XSalsa20 subkey per epoch."""
    return struct.pack(">BBHIQQ", V_RECORD, kid, 0, epoch, 0, seq)


def _tag(key, label, hub_id, body):
    return hmac.hmac_sha256(key, label, bytes((len(hub_id),)), hub_id, body)[:16]


def epoch_tag(kauth, hub_id, header46):
    """The 16-byte authenticator of an epoch header's first 46 bytes."""
    return _tag(kauth, EPOCH_LABEL, hub_id, header46)


def config_tag(kcfg, hub_id, body):
    """The 16-byte authenticator of a receiver-key config's body."""
    return _tag(kcfg, CONFIG_LABEL, hub_id, body)


def parse_config(blob):
    """(serial, [(key id, public key), ...]) of a config message; the tag is not checked here."""
    if len(blob) < 6 or blob[0] != V_CONFIG:
        raise SealError("not a version-1 receiver-key config")
    n = blob[5]
    if not 1 <= n <= MAX_RECEIVERS or len(blob) != 6 + 33 * n + 16:
        raise SealError("config of %d bytes with %d keys is malformed" % (len(blob), n))
    serial = struct.unpack(">I", blob[1:5])[0]
    keys = []
    for i in range(n):
        o = 6 + 33 * i
        keys.append((blob[o], bytes(blob[o + 1:o + 33])))
    return serial, keys


def epoch_of(header):
    """The epoch number of an epoch header; None for anything else (a record, a config).
    The uplink uses it to find the header that opens a record's epoch."""
    if len(header) < EPOCH_BYTES or header[0] != V_EPOCH:
        return None
    return (header[2] << 24) | (header[3] << 16) | (header[4] << 8) | header[5]


def batch_room(items):
    """Bytes a batch of these items may take at most (each length in LEB_MAX_BYTES), for
    batch_into's buffer."""
    n = 1
    for it in items:
        n += len(it) + LEB_MAX_BYTES
    return n


def batch_into(out, items):
    """Write the batch of items (epoch headers, records) into the bytearray out, which
    has batch_room(items) bytes; returns the batch's length. The uplink keeps one buffer
    for every batch this way: a fresh one each time fragments a heap mbedTLS shares.
    The limits are the caller's to keep (batch() checks them)."""
    out[0] = V_BATCH
    i = 1
    for it in items:
        n = len(it)
        while n >= 0x80:
            out[i] = (n & 0x7F) | 0x80
            i += 1
            n >>= 7
        out[i] = n
        i += 1
        out[i:i + len(it)] = it
        i += len(it)
    return i


def batch(items):
    """A batch for the uplink: 0x13, then each epoch header or record prefixed by its length (LEB128).

    Refuses (BatchLimit) what a receiver would refuse: more than
    MAX_BATCH_ITEMS items or MAX_BATCH_BYTES bytes."""
    if len(items) > MAX_BATCH_ITEMS:
        raise BatchLimit("batch of %d items, at most %d" % (len(items), MAX_BATCH_ITEMS))
    out = bytearray(batch_room(items))
    n = batch_into(out, items)
    if n > MAX_BATCH_BYTES:
        raise BatchLimit("batch of %d bytes, at most %d" % (n, MAX_BATCH_BYTES))
    return bytes(memoryview(out)[:n])  # one copy (a bytearray slice would be a second)


def read_len(data, i):
    """(length, next index) of the LEB128 item length at data[i]; None for a
    length that is truncated, longer than LEB_MAX_BYTES or not minimal."""
    n = 0
    for k in range(LEB_MAX_BYTES):
        if i + k >= len(data):
            return None
        b = data[i + k]
        n |= (b & 0x7F) << (7 * k)
        if not b & 0x80:
            if b == 0 and k:
                return None  # a trailing zero group: not minimal
            return n, i + k + 1
    return None


def unbatch(data):
    """The items of a batch, within the limits batch() keeps. The receiver reads
    batches with this function (host/samband/receiver/opener.py): BatchLimit
    for a batch over the limits, SealError for anything else malformed."""
    if not len(data) or data[0] != V_BATCH:
        raise SealError("not a version-1 batch")
    if len(data) > MAX_BATCH_BYTES:
        raise BatchLimit("batch of %d bytes, at most %d" % (len(data), MAX_BATCH_BYTES))
    items = []
    i = 1
    mv = memoryview(data)
    while i < len(data):
        got = read_len(data, i)
        if got is None:
            raise SealError("batch item length is truncated, too long or not minimal")
        n, i = got
        if len(items) >= MAX_BATCH_ITEMS:
            raise BatchLimit("batch of more than %d items" % MAX_BATCH_ITEMS)
        if i + n > len(data):
            raise SealError("batch item of %d bytes runs past the end" % n)
        items.append(bytes(mv[i:i + n]))
        i += n
    return items


# ---------------------------------------------------------------- flash

def _write_atomic(path, data):
    d = path[:path.rfind("/")]
    if d:
        try:
            os.mkdir(d)
        except OSError:
            pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class EpochCounter:
    """Epoch numbers that are never handed out twice, across reboots and power cuts.

    reserve() writes the new number to flash (temporary file, then an atomic
    rename) before returning it, so a power cut can only skip numbers. A file
    that exists but does not read back as a number and its complement
    (flash damage, tampering) restarts the count at a random number with the
    top bit set instead of at 1."""

    def __init__(self, path="/state/seal.epoch", rng=os.urandom):
        self.path = path
        self._rng = rng

    def current(self):
        raw = hub.read_bytes(self.path)
        if raw is None:
            return 0
        if len(raw) == 8:
            n, inv = struct.unpack(">II", raw)
            if n ^ inv == _EPOCH_MAX:
                return n
        return None

    def reserve(self):
        n = self.current()
        if n is None:
            r = self._rng(4)
            n = 0x80000000 | ((r[0] & 0x7F) << 24) | (r[1] << 16) | (r[2] << 8) | r[3]
        if n >= _EPOCH_MAX:
            raise SealError("epoch numbers are exhausted")
        n += 1
        _write_atomic(self.path, struct.pack(">II", n, n ^ _EPOCH_MAX))
        return n


class Keys:
    """The hub's provisioned keys on flash, under root:
      hub.key        the hub's static X25519 secret (32 bytes)
      authority.pub  the public key that authenticates receiver-key configs
      receivers      the last accepted config: the receiver keys, first is current
    Secret material other than hub.key never touches flash."""

    def __init__(self, hub_id, root="/keys"):
        self.hub_id = bytes(hub_id)
        self.root = root
        self.hub_secret = hub.read_bytes(root + "/hub.key")
        self.authority = hub.read_bytes(root + "/authority.pub")
        cfg = hub.read_bytes(root + "/receivers")
        if self.hub_secret is None or len(self.hub_secret) != 32:
            raise SealError("%s/hub.key is missing or not 32 bytes: provision the hub" % root)
        if self.authority is None or len(self.authority) != 32:
            raise SealError("%s/authority.pub is missing or not 32 bytes: provision the hub" % root)
        if cfg is None:
            raise SealError("%s/receivers is missing: provision the hub" % root)
        self.serial, self.receivers = parse_config(cfg)
        self._kcfg = None

    @property
    def receiver(self):
        """(key id, public key) that new epochs are sealed to."""
        return self.receivers[0]

    def public_key(self):
        return box.public_key(self.hub_secret)

    def verify(self, label, blob):
        """Whether blob's last 16 bytes authenticate the rest as the authority's, for this hub,
        under label (one label per kind of config: receiver keys, alarm limits). A tag made for
        another hub, another kind of config or with another authority key does not verify."""
        if len(blob) < 16:
            return False
        if self._kcfg is None:
            try:
                self._kcfg = box.beforenm(self.authority, self.hub_secret)
            except CryptoError:
                raise SealError("the authority key on flash is unusable")
            hub.forget("hub.crypto.x25519")
        return hmac.verify(blob[-16:], self._kcfg, label, bytes((len(self.hub_id),)), self.hub_id, blob[:-16])

    def apply(self, blob):
        """Verify and store a receiver-key config from the authority; returns the new current receiver.

        Refuses a config that is forged, meant for another hub, not newer than
        the stored one (a replay), or that names a key of small order."""
        serial, keys = parse_config(blob)
        if not self.verify(CONFIG_LABEL, blob):
            raise SealError("config is not authentic for this hub")
        if serial <= self.serial:
            raise SealError("config %d is not newer than the current %d (replayed)" % (serial, self.serial))
        from hub.crypto import x25519
        for kid, pk in keys:
            if x25519.is_small_order(pk):
                raise SealError("receiver key %d has small order" % kid)
        hub.forget("hub.crypto.x25519")
        _write_atomic(self.root + "/receivers", bytes(blob))
        self.serial, self.receivers = serial, keys
        return keys[0]


# ---------------------------------------------------------------- sealing

class Sealer:
    """Seals records for the journal.

    hub_id: the hub's identity as the receiver knows it (its unique id);
    hub_secret: its static secret; receiver: (key id, public key);
    counter: an EpochCounter; rng(n) -> n random bytes; on_epoch(header)
    is called with each new epoch header before the first record sealed
    under it is returned (Sealer(on_epoch=journal.context)): the journal
    must keep the header as long as any record of its epoch.
    seal(seq, plaintext) needs seq to rise strictly."""

    def __init__(self, hub_id, hub_secret, receiver, counter, rng=os.urandom, on_epoch=None):
        self.hub_id = bytes(hub_id)
        if len(self.hub_id) > 255:
            raise SealError("hub id longer than 255 bytes")
        if len(hub_secret) != 32:
            raise SealError("hub secret must be 32 bytes")
        self._h = hub_secret
        self._counter = counter
        self._rng = rng
        self.on_epoch = on_epoch
        self._kauth = {}
        self._epoch = None  # (number, base, Boxer, kid, header)
        self._ready = None  # (E, key) for the next epoch
        self._last = None
        self.epochs = 0
        self.set_receiver(receiver)

    def set_receiver(self, receiver):
        """Seal to another receiver key from now on (a new epoch begins)."""
        kid, pk = receiver
        if not 0 <= kid <= 255 or len(pk) != 32:
            raise SealError("receiver must be (key id 0..255, 32-byte public key)")
        self._receiver = (kid, bytes(pk))
        self._epoch = None
        self._ready = None

    def prepare(self):
        """Do the next epoch's X25519 work now (at boot), so the first seal is quick."""
        kid, pk = self._receiver
        if kid not in self._kauth:
            self._kauth[kid] = box.beforenm(pk, self._h)
        if self._ready is None:
            e = bytearray(self._rng(32))
            pub = box.public_key(e)
            key = box.beforenm(pk, e)
            for i in range(32):
                e[i] = 0
            self._ready = (pub, key)
        hub.forget("hub.crypto.x25519")  # next needed by the next epoch (box imports it again)

    def _begin(self, base):
        self.prepare()
        pub, key = self._ready
        self._ready = None
        self._epoch = None
        kid = self._receiver[0]
        number = self._counter.reserve()  # durable before anything is sealed under it
        hdr = bytearray(EPOCH_BYTES)
        hdr[0:14] = struct.pack(">BBIQ", V_EPOCH, kid, number, base)
        hdr[14:46] = pub
        hdr[46:62] = epoch_tag(self._kauth[kid], self.hub_id, memoryview(hdr)[0:46])
        hdr = bytes(hdr)
        if self.on_epoch:
            self.on_epoch(hdr)  # if the journal cannot keep it, no record is sealed under it
        self._epoch = (number, base, box.Boxer(key, record_nonce(kid, number, 0)[0:16]), kid, hdr)
        self.epochs += 1

    def seal(self, seq, plaintext):
        """The sealed record of plaintext with sequence number seq: a bytearray of len(plaintext) + 20."""
        n = len(plaintext)
        rec = bytearray(RECORD_OVERHEAD + n)
        rec[RECORD_OVERHEAD:] = plaintext
        self.seal_into(seq, rec, n)
        return rec

    def seal_into(self, seq, buf, n):
        """Seal in place, allocating nothing large: the plaintext is at buf[20:20+n];
        afterwards buf[0:20+n] is the record. Returns its length, n + 20.
        A journal that keeps one buffer for its largest record avoids heap
        fragmentation on the boards."""
        if not 0 <= seq <= SEQ_MAX:
            raise SealError("sequence number %r out of range 0..2**63-1" % (seq,))
        if self._last is not None and seq <= self._last:
            raise SealError("sequence %d is not above the last sealed %d" % (seq, self._last))
        if len(buf) < RECORD_OVERHEAD + n:
            raise SealError("buffer of %d bytes cannot hold a record of %d" % (len(buf), RECORD_OVERHEAD + n))
        ep = self._epoch
        if ep is None or seq - ep[1] > MAX_SPAN:
            self._begin(seq)
            ep = self._epoch
        number, base, boxer = ep[0], ep[1], ep[2]
        self._last = seq
        buf[0:4] = struct.pack(">BBH", V_RECORD, number & 0xFF, seq - base)
        boxer.seal_into(buf, RECORD_HEADER, n, struct.pack(">Q", seq))
        return RECORD_OVERHEAD + n


def from_flash(hub_id, keys_root="/keys", counter_path="/state/seal.epoch", on_epoch=None, rng=os.urandom):
    """(Keys, Sealer) for this hub from its provisioned keys. The first seal starts
    this boot's epoch; call sealer.prepare() at boot to do its X25519 work early."""
    keys = Keys(hub_id, keys_root)
    s = Sealer(hub_id, keys.hub_secret, keys.receiver, EpochCounter(counter_path, rng), rng, on_epoch)
    return keys, s
