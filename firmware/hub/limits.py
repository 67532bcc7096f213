# Per-patient alarm limits, provisioned by the depot's authority.
#
# Why signed: a limit decides whether a glucose of 60 mg/dL wakes a
# responder or waits in the routine backlog, so whoever can change it can
# silence an alarm. The hub takes limits only in a config authenticated
# exactly as its receiver-key config is (hub.seal.Keys.verify: HMAC
# under crypto_box_beforenm(authority public, hub secret), bound to this
# hub's id), so a laptop that has the technician's tools but not the
# depot's authority.key cannot widen them.
#
#   0      0x14, version 1 limits config
#   1:5    serial, u32 BE: a config is taken only if its serial is above the
#          stored one (a replayed or older config is refused)
#   5:-16  CBOR array of rules [[mdc, ...], UCUM unit, low or null, high or null]
#   -16:   HMAC-SHA256(kcfg, "samband/limits/1" | len(hub id) | hub id | bytes 0:-16)[:16]
#
# On flash: /keys/limits is the accepted config; the host writes a new one
# to /keys/limits.new (samband limits), and the hub takes it at boot: it is
# verified, then renamed over the old one (or refused and removed, the
# previous limits staying). Refusals are counted on flash (/keys/limits.refused,
# so a refusal at one boot is still visible at the next) and the last one
# is named in the status's problems.

import os
import struct

import hub
from hub import alarms, cbor
from hub.errors import HubError

V_LIMITS = 0x14
LIMITS_LABEL = b"samband/limits/1"
MAX_RULES = 24
MAX_BYTES = 1024
MAX_UNIT = 16
MAX_CODES = 12


class LimitsError(HubError):
    """A limits config the hub refuses: malformed, not authentic, or not newer."""


def _num(v):
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == v)


def check_rules(rules):
    """The rules as tuples (codes, unit, low, high); LimitsError names the first defect. Pure."""
    if not isinstance(rules, list) or len(rules) > MAX_RULES:
        raise LimitsError("want a list of at most %d rules" % MAX_RULES)
    out = []
    for i, r in enumerate(rules):
        if not isinstance(r, (list, tuple)) or len(r) != 4:
            raise LimitsError("rule %d is not [codes, unit, low, high]" % i)
        codes, unit, lo, hi = r
        if not isinstance(codes, (list, tuple)) or not codes or len(codes) > MAX_CODES \
                or not all(isinstance(c, int) and not isinstance(c, bool) and 0 < c < 1 << 32 for c in codes):
            raise LimitsError("rule %d: codes must be 1..%d MDC codes" % (i, MAX_CODES))
        if not isinstance(unit, str) or not 0 < len(unit) <= MAX_UNIT:
            raise LimitsError("rule %d: unit must be a UCUM unit of 1..%d characters" % (i, MAX_UNIT))
        if not _num(lo) or not _num(hi) or (lo is None and hi is None):
            raise LimitsError("rule %d: low and high must be numbers (one may be null)" % i)
        if lo is not None and hi is not None and lo >= hi:
            raise LimitsError("rule %d: low %r is not below high %r" % (i, lo, hi))
        out.append((tuple(codes), unit, lo, hi))
    return out


def body(serial, rules):
    """The config without its tag (the host's authority appends the tag). Pure."""
    if not 0 < serial < 1 << 32:
        raise LimitsError("serial must be 1..2**32-1")
    rs = [[list(c), u, lo, hi] for c, u, lo, hi in check_rules(list(rules))]
    out = struct.pack(">BI", V_LIMITS, serial) + cbor.dumps(rs)
    if len(out) + 16 > MAX_BYTES:
        raise LimitsError("config of %d bytes, at most %d" % (len(out) + 16, MAX_BYTES))
    return out


def parse(blob):
    """(serial, rules) of a config; the tag is not checked here. Pure."""
    if not 5 + 1 + 16 <= len(blob) <= MAX_BYTES or blob[0] != V_LIMITS:
        raise LimitsError("not a version-1 limits config")
    serial = struct.unpack(">I", blob[1:5])[0]
    try:
        rules = cbor.loads(bytes(blob[5:-16]))
    except ValueError as e:
        raise LimitsError("rules are not valid CBOR: %s" % e)
    return serial, check_rules(rules)


class Limits:
    """The hub's per-patient limits: load() at boot, offer(blob) for a new config.

    keys: the hub's hub.seal.Keys (verify() checks a config's tag)."""

    def __init__(self, keys, root="/keys"):
        self.keys = keys
        self.path = root + "/limits"
        self.refused = 0
        raw = hub.read_bytes(self.path + ".refused")
        try:
            self.refused = int(raw) if raw else 0
        except ValueError:
            pass  # a damaged counter restarts at 0
        self.serial = 0
        self.rules = []
        self.problem = None  # the last refusal, in words

    def _check(self, blob):
        serial, rules = parse(blob)
        try:
            ok = self.keys.verify(LIMITS_LABEL, blob)
        except ValueError as e:  # SealError: the authority key on flash is unusable
            raise LimitsError(str(e))
        if not ok:
            raise LimitsError("limits config is not authentic for this hub (not made with its depot's authority key)")
        return serial, rules

    def _use(self, serial, rules):
        self.serial, self.rules = serial, rules
        alarms.set_limits(rules)

    def _refuse(self, what, e):
        self.problem = "%s refused: %s; %s" % (what, e, "limits %d stay" % self.serial if self.serial
                                                 else "the kinds' default limits stay")
        self.refused += 1
        tmp = self.path + ".refused.tmp"
        with open(tmp, "w") as f:
            f.write(str(self.refused))
        os.rename(tmp, self.path + ".refused")

    def offer(self, blob):
        """Verify and apply a new config; LimitsError (counted, named in problem) if refused,
        and the limits in force do not change."""
        try:
            serial, rules = self._check(blob)
            if serial <= self.serial:
                raise LimitsError("config %d is not newer than the current %d (replayed)" % (serial, self.serial))
        except LimitsError as e:
            self._refuse("limits config", e)
            raise
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.rename(tmp, self.path)  # atomic on littlefs and POSIX: old or new after a power cut
        self._use(serial, rules)
        return serial

    def load(self):
        """At boot: the accepted config, then a new one the host left in limits.new."""
        blob = hub.read_bytes(self.path)
        if blob is not None:
            try:
                self._use(*self._check(blob))
            except LimitsError as e:
                self._refuse("stored " + self.path, e)
        new = hub.read_bytes(self.path + ".new")
        if new is not None:
            try:
                self.offer(new)
            except LimitsError:
                pass  # counted and named in problem; the file goes so it is not refused every boot
            os.remove(self.path + ".new")

    def stats(self):
        return {"serial": self.serial, "rules": len(self.rules), "refused": self.refused}


def boot(keys, root, problems):
    """Take the limits at boot (Limits.load); returns the status's "limits" and appends a
    refusal to problems. Then this module drops itself from sys.modules: it is needed once per
    boot, and on a board whose .mpy bytecode lives in the heap a module kept for one call is
    kilobytes lost for good (the full firmware on the virtual hub's heap has none to spare)."""
    lim = Limits(keys, root)
    try:
        lim.load()
    except OSError as e:  # a flash that cannot keep the config: the limits in force stay
        problems.append("limits: %s" % e)
    if lim.problem:
        problems.append(lim.problem)
    import sys
    import hub
    sys.modules.pop("hub.limits", None)
    try:
        del hub.limits
    except (AttributeError, KeyError):
        pass
    return lim.stats()

