# Signed releases: what the hub checks before it lets an update near a
# slot (docs/ota.md). Pure: bytes and streams in, a manifest or a
# ReleaseError out; delivery, the slots and the switch live elsewhere.
#
# A release is one byte string:
#   "SbR" 0x01 | manifest length (u16, big-endian) | manifest (CBOR map)
#   | Ed25519 signature (64) | image (the manifest's size bytes)
# The signature covers DOMAIN + manifest, so a manifest signature can
# never be mistaken for a signature over anything else the release key
# might one day sign. The manifest names the image by SHA-512 and size,
# so the signature covers the image too, and the image can be checked as
# it streams in, without holding it in the heap:
#   v      release version "MAJOR.MINOR.PATCH" (text)
#   min    the oldest running version that may update to it (text)
#   board  the board name it is built for (board.json "name")
#   kind   "app" (the hub package as a ROMFS image), "firmware" (a
#          whole MicroPython image for the OTA partition) or "tree" (a
#          whole firmware tree for a slot folder, hub.otatree's format)
#   size   image bytes;  sha512  the image's SHA-512 (64 bytes)
#   time   release time, seconds since 1970 (UTC)
# Checks, in order: the header's shape, the signature (nothing in an
# unsigned manifest is parsed), the manifest's fields, the board, the
# kind, the version (newer than the running one), the minimum version;
# then, while the image streams: its size and its hash. Each refusal has
# its own ReleaseError code, so that the hub can report which.

from hub import cbor
from hub.crypto import ed25519
from hub.crypto.sha512 import sha512
from hub.errors import HubError

MAGIC = b"SbR\x01"
DOMAIN = b"samband release manifest v1\x00"
HEAD = 6  # magic + length
SIG = 64
MAX_MANIFEST = 1024
KINDS = ("app", "firmware", "tree")
_FIELDS = (("v", str), ("min", str), ("board", str), ("kind", str), ("size", int), ("sha512", bytes),
           ("time", int))


class ReleaseError(HubError):
    """A release the hub refuses; code says which check failed."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def parse_version(text):
    """'1.2.3' -> (1, 2, 3): one to three decimal parts, each 0..65535, no signs,
    spaces or leading zeros (so that every version has exactly one spelling)."""
    if not isinstance(text, str) or not text:
        raise ReleaseError("version", "a version must be text like 1.2.3, not %r" % (text,))
    parts = text.split(".")
    if len(parts) > 3:
        raise ReleaseError("version", "version %r has more than three parts" % text)
    out = []
    for p in parts:
        if not p or not all("0" <= c <= "9" for c in p) or (len(p) > 1 and p[0] == "0") or len(p) > 5:
            raise ReleaseError("version", "version %r: each part must be a number 0..65535 without leading zeros"
                               % text)
        n = int(p)
        if n > 65535:
            raise ReleaseError("version", "version %r: %d is above 65535" % (text, n))
        out.append(n)
    while len(out) < 3:
        out.append(0)
    return tuple(out)


def manifest_length(head):
    """The manifest's length, from the release's first HEAD bytes (magic and length)."""
    if len(head) < HEAD or bytes(head[:4]) != MAGIC:
        raise ReleaseError("format", "not a Samband release (bad magic)")
    n = (head[4] << 8) | head[5]
    if not 0 < n <= MAX_MANIFEST:
        raise ReleaseError("format", "manifest length %d is outside 1..%d" % (n, MAX_MANIFEST))
    return n


def split_header(head):
    """(manifest bytes, signature, offset of the image) from the first bytes of a
    release (at least HEAD + manifest + SIG of them)."""
    n = manifest_length(head)
    end = HEAD + n + SIG
    if len(head) < end:
        raise ReleaseError("truncated", "release ends inside its header (%d of %d bytes)" % (len(head), end))
    return bytes(head[HEAD:HEAD + n]), bytes(head[HEAD + n:end]), end


def parse_manifest(data):
    """The manifest's fields as a dict (plus "version" and "min_version" as tuples)."""
    try:
        m = cbor.loads(data)
    except ValueError as e:
        raise ReleaseError("manifest", "manifest is not valid CBOR: %s" % e)
    if not isinstance(m, dict):
        raise ReleaseError("manifest", "manifest is not a map")
    for key, typ in _FIELDS:
        if key not in m:
            raise ReleaseError("manifest", "manifest lacks %r" % key)
        if not isinstance(m[key], typ) or (typ is int and isinstance(m[key], bool)):
            raise ReleaseError("manifest", "manifest field %r has the wrong type" % key)
    if len(m["sha512"]) != 64:
        raise ReleaseError("manifest", "manifest sha512 is %d bytes, not 64" % len(m["sha512"]))
    if m["size"] < 0 or m["time"] < 0:
        raise ReleaseError("manifest", "manifest size and time must not be negative")
    m["version"] = parse_version(m["v"])
    m["min_version"] = parse_version(m["min"])
    return m


def check_manifest(manifest, signature, public_key, board, running, kind=None):
    """The parsed manifest if the release may replace the running version on this
    board: signed by public_key (the release key provisioned on the hub), for this
    board (name) and kind (if given), newer than running ("1.2.3"), and running at
    least its minimum version. Raises ReleaseError otherwise. running may be a map
    {kind: version}: a hub whose firmware image has a version of its own (the ESP32's
    OTA partitions) compares a firmware release with that and a tree with hub.VERSION;
    a kind missing from the map is one this hub cannot take."""
    if len(signature) != SIG:
        raise ReleaseError("format", "signature is %d bytes, not 64" % len(signature))
    if not ed25519.verify(public_key, DOMAIN + manifest, signature):
        raise ReleaseError("signature", "release signature does not verify with the release key")
    m = parse_manifest(manifest)
    if m["board"] != board:
        raise ReleaseError("board", "release is for board %s, this hub is %s" % (m["board"], board))
    if m["kind"] not in KINDS:
        raise ReleaseError("kind", "release kind %r is not one of %s" % (m["kind"], ", ".join(KINDS)))
    if kind is not None and m["kind"] != kind:
        raise ReleaseError("kind", "release is a %s image, %s wanted" % (m["kind"], kind))
    if isinstance(running, dict):
        if running.get(m["kind"]) is None:
            e = ReleaseError("kind", "release is a %s image; this hub takes %s releases only"
                             % (m["kind"], " and ".join(k for k in sorted(running) if running[k] is not None)))
            e.release_kind = m["kind"]  # which kind it could not take, for the caller's counters
            raise e
        running = running[m["kind"]]
    now = parse_version(running)
    if m["version"] < now:
        raise ReleaseError("downgrade", "release %s is older than the running %s (downgrade refused)"
                           % (m["v"], running))
    if m["version"] == now:
        raise ReleaseError("same", "release %s is the running version" % m["v"])
    if now < m["min_version"]:
        raise ReleaseError("too-old", "release %s updates only from %s or newer; this hub runs %s"
                           % (m["v"], m["min"], running))
    return m


def load_key(root="/keys"):
    """The release public key provisioned on the hub (root/release.pub, 32 bytes)."""
    try:
        with open(root + "/release.pub", "rb") as f:
            key = f.read(33)
    except OSError:
        key = b""
    if len(key) != 32:
        raise ReleaseError("key", "%s/release.pub is missing or not 32 bytes: provision the hub" % root)
    return key


class ImageCheck:
    """Hashes an image as it streams in; finish() says whether it is the one the
    manifest names (size, then SHA-512)."""

    def __init__(self, manifest):
        self.want = manifest["size"]
        self.digest = manifest["sha512"]
        self.n = 0
        self._h = sha512()

    def update(self, chunk):
        if self.n + len(chunk) > self.want:
            raise ReleaseError("too-long", "image is longer than the %d bytes its manifest names" % self.want)
        self._h.update(chunk)
        self.n += len(chunk)

    def finish(self):
        if self.n < self.want:
            raise ReleaseError("truncated", "image is truncated: %d of %d bytes" % (self.n, self.want))
        if self._h.digest() != self.digest:
            raise ReleaseError("hash", "image SHA-512 differs from the manifest's (altered or corrupt image)")


def verify_stream(f, public_key, board, running, sink=None, chunk=2048, kind=None):
    """Read a whole release from stream f (readinto or read), checking everything
    above; each image chunk also goes to sink(memoryview) if given (the inactive
    slot), so nothing but one chunk is ever held. Returns the manifest; the caller
    must discard what sink received if this raises."""
    head = _read(f, HEAD)
    rest = _read(f, manifest_length(head) + SIG)
    manifest, signature, _ = split_header(head + rest)
    m = check_manifest(manifest, signature, public_key, board, running, kind)
    img = ImageCheck(m)
    buf = bytearray(chunk)
    mv = memoryview(buf)
    while True:
        got = f.readinto(buf) if hasattr(f, "readinto") else _copy(f, buf)
        if not got:
            break
        img.update(mv[:got])
        if sink is not None:
            sink(mv[:got])
    img.finish()
    return m


def _read(f, n):
    out = b""
    while len(out) < n:
        b = f.read(n - len(out))
        if not b:
            break
        out += b
    if len(out) < n:
        raise ReleaseError("truncated", "release ends inside its header")
    return out


def _copy(f, buf):
    b = f.read(len(buf))
    if not b:
        return 0
    buf[:len(b)] = b
    return len(b)
