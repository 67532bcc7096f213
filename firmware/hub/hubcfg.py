# Signed configs over the hub's own uplink (docs/alerts.md, docs/protocol.md):
# per-patient alarm limits (hub/limits.py, 0x14) and receiver-key rotation
# (hub/seal.py Keys.apply, 0x12), sent by `samband config push` as the
# receiver's login to samband/<hub>/cfg/<kind> (QoS 1, retained, so a hub
# that is offline takes it when it next connects).
#
# Why one place for both: they are authenticated the same way (an HMAC
# under the depot's authority key and this hub's key, bound to the hub's
# id, with one label per kind), numbered the same way (a serial: only a
# newer one is taken, so a replay or an older config is refused) and
# reported the same way (the status's "cfg" entry, a telemetry reading per
# step). Both are applied without a reboot: new limits judge the next
# reading; a new receiver key starts a new epoch at the next seal, while
# records already sealed keep their epoch and travel as they are.
#
# Loaded only when a config message arrives, and dropped from sys.modules
# again by take() (about 2 KB of heap on the unix port): the hub keeps the
# small status dict (`state`) itself.

MDC_HUB_CFG_LIMITS = 1024 << 16 | 71    # val: the serial of limits now in force
MDC_HUB_CFG_KEYS = 1024 << 16 | 72      # val: the serial of the receiver keys now in force
MDC_HUB_CFG_REFUSED = 1024 << 16 | 73   # val: index of the code in REFUSALS
REFUSALS = ("format", "forged", "replay", "key", "flash")


def take(payload, keys, sealer, state, root="/keys", telemetry=None, log=None):
    """Verify and apply one config message; never raises (a refusal is counted in
    state["bad"], named in state["r"], its serial in state["x"] when it has one, so
    that the sender can tell its own refusal from an older one, and sent as a
    telemetry reading).

    state: the hub's {"k": receiver-key serial, "l": limits serial} (the status's
    "cfg" entry), updated here. The config in force already (its serial equal to
    the current one: a retained message heard again at a reconnect) is no refusal."""
    code = None
    serial = None
    _drop("hubcfg")  # needed for a moment per config: its 2 KB go back to the heap after the call
    try:
        code, serial, what = _take(bytes(payload), keys, sealer, state, root)
    except OSError as e:  # the flash could not keep it: nothing changed, said in the status
        code, what = "flash", "config not stored: %s" % e
    except ValueError as e:  # SealError: the authority key on flash is unusable
        code, what = "key", str(e)
    if code is None:
        if serial is not None and telemetry is not None:
            telemetry(MDC_HUB_CFG_KEYS if what == "k" else MDC_HUB_CFG_LIMITS, serial)
        if serial is not None and log is not None:
            log("config: %s %d in force" % ("receiver keys" if what == "k" else "limits", serial))
        return True
    state["bad"] = state.get("bad", 0) + 1
    state["r"] = code
    state["x"] = serial or 0
    if telemetry is not None:
        telemetry(MDC_HUB_CFG_REFUSED, REFUSALS.index(code))
    if log is not None:
        log("config refused (%s): %s" % (code, what))
    return False


def _take(blob, keys, sealer, state, root):
    # (refusal code or None, serial taken or None, what) ; OSError passes
    from hub import seal  # loaded at boot already; the version bytes are seal's and limits'
    if len(blob) < 22:
        return "format", None, "not a receiver-key or limits config"
    if blob[0] == seal.V_CONFIG:
        try:
            serial = seal.parse_config(blob)[0]
        except ValueError as e:
            return "format", None, str(e)
        if not keys.verify(seal.CONFIG_LABEL, blob):
            return "forged", serial, "receiver-key config is not authentic for this hub"
        if serial == keys.serial:
            return None, None, "k"
        if serial < keys.serial:
            return "replay", serial, "receiver-key config %d is older than %d" % (serial, keys.serial)
        try:
            current = keys.apply(blob)  # checks again, refuses small-order keys, writes atomically
        except seal.SealError as e:
            return "key", serial, str(e)
        sealer.set_receiver(current)  # records from now on: a new epoch under the new key
        state["k"] = serial
        return None, serial, "k"
    from hub import limits
    try:
        lim = limits.Limits(keys, root)
        try:
            serial = limits.parse(blob)[0]  # refuses anything but a version-1 limits config (0x14)
        except limits.LimitsError as e:
            return "format", None, str(e)
        if not keys.verify(limits.LIMITS_LABEL, blob):
            return "forged", serial, "limits config is not authentic for this hub"
        lim.load()  # the config in force (and its serial) from flash
        if serial == lim.serial:
            return None, None, "l"
        try:
            lim.offer(blob)  # newer than the stored one, written atomically, applied to alarms
        except limits.LimitsError as e:
            return "replay", serial, str(e)
        state["l"] = serial
        return None, serial, "l"
    finally:
        _drop("limits")  # needed once per config, as at boot


def _drop(name):
    import sys
    import hub
    sys.modules.pop("hub." + name, None)
    try:
        delattr(hub, name)
    except (AttributeError, KeyError):
        pass
