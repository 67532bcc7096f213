# The BLE conformance scenarios of issue 18, defined once, as data. Every
# transport runs the same set and is judged by the same check():
#   the bridge (virtual hub + bumble emulated devices)  tests/test_ble_conformance.py
#   hub.ble.native on the stack double, NimBLE mode     tests/fw/conform_native.py (driven by the same test)
#   hub.ble.native on the stack double, BTstack mode    (the same)
#   a real ESP32 / Pico W on the bench, over the air    tests/test_hil_bench.py
# so that where two transports disagree, the scenario that shows it is already
# written. docs/ble.md ("The conformance set") says how to add one.
#
# Pure data and pure functions: imported by CPython (pytest, the bridge
# driver) and by the MicroPython unix port (the native driver), so no
# f-strings, no dataclasses, no imports.
#
# A scenario:
#   id        the pytest id on every transport
#   devices   role -> the emulated device: kind, address (random static, unique
#             across the set: one bridge serves every scenario) and the kind's
#             options as the bridge's device file names them (docs/ble.md):
#             records (glucose: stored records 1..n), stored (thermo: measurements
#             held for indication), peer_mtu (the device's Rx MTU; it starts an ATT
#             MTU exchange itself while the hub discovers its services)
#   steps     what happens once the devices are connected, in order:
#             ("until", role, {status: value})  wait for the collector's status of
#                                               the device (numbers: at least; others: equal)
#             ("measure", role, n)     n new measurements (glucose: new records,
#                                      notified; thermo: 3 interim temperatures
#                                      notified, then the measurement indicated)
#             ("forget_bond", role)    the device forgets the hub's keys (a reset)
#             ("drop_link", role)      the device drops the link (reason 0x08)
#   expect    role -> the outcome, the same on every transport:
#             records   the glucose record numbers stored, exactly, none twice
#             labels    how many stored readings of each label (label() below),
#                       exactly: measurements and the collector's telemetry
#             status    the collector's status of the device (numbers: equal,
#                       except keys in AT_LEAST)
#   btstack   role -> what MicroPython's Pico W build (BTstack, no bonding) does
#             instead, where it differs: {"refused": words in last_error} for a
#             kind that needs a bond, and nothing stored from it

GLUCOSE_MDC = (160184, 160188, 160192, 160196, 160200, 160204, 160208, 160212, 160020)
TEMPERATURE_MDC = (150364, 188452, 188428, 188432, 188456, 188424, 188420, 188448, 150392)
BOND_LOST_MDC = 1024 << 16 | 4   # hub.collect.MDC_HUB_BOND_LOST
CONNECTED_MDC = 1024 << 16 | 2   # hub.collect.MDC_HUB_DEVICE_CONNECTED
MDC, VAL, REC, CTX = 2, 3, 10, 16  # hub.reading keys

# status counters that may be higher on a transport without the scenario being
# wrong: the count of readings includes battery and clock telemetry, which differ
# with what the emulated device serves (the double has no battery service)
AT_LEAST = ("readings",)
TRANSPORTS = ("bridge", "nimble", "btstack")

SCENARIOS = [
    {"id": "indicate_stored",
     "about": "connect, discover, subscribe to indications: the thermometer's two stored "
              "measurements are indicated once the hub subscribes, each stored once",
     "devices": {"thermo": {"kind": "thermo", "address": "C0:5A:4B:01:01:06", "stored": 2}},
     "steps": [],
     "expect": {"thermo": {"labels": {"temperature": 2, "connected": 1},
                           "status": {"subscribed": True, "connects": 1, "errors": 0, "readings": 2}}}},

    {"id": "notify_live",
     "about": "subscribe to notifications: interim temperatures notified, then the measurement indicated",
     "devices": {"thermo": {"kind": "thermo", "address": "C0:5A:4B:01:02:06", "stored": 0}},
     "steps": [("until", "thermo", {"subscribed": True}),
               ("measure", "thermo", 1)],
     "expect": {"thermo": {"labels": {"temperature": 1, "interim temperature": 3, "connected": 1},
                           "status": {"subscribed": True, "connects": 1, "errors": 0, "readings": 4}}}},

    {"id": "racp_backfill",
     "about": "a bonded glucose meter: its 5 stored records fetched with RACP, each once",
     "devices": {"meter": {"kind": "glucose", "address": "C0:5A:4B:01:03:01", "records": 5}},
     "steps": [],
     "expect": {"meter": {"records": [1, 2, 3, 4, 5], "labels": {"glucose": 5, "connected": 1},
                          "status": {"subscribed": True, "connects": 1, "errors": 0, "last_rec": 5,
                                     "gaps": 0, "duplicates": 0, "bond_losses": 0}}},
     "btstack": {"meter": {"refused": "cannot bond"}}},

    {"id": "reconnect_bonded",
     "about": "the link drops after the backfill: the hub reconnects, re-encrypts with the stored "
              "bond, and its backfill from the lowest missing number stores nothing twice",
     "devices": {"meter": {"kind": "glucose", "address": "C0:5A:4B:01:07:01", "records": 2}},
     "steps": [("until", "meter", {"last_rec": 2}),
               ("drop_link", "meter")],
     "expect": {"meter": {"records": [1, 2], "labels": {"glucose": 2, "connected": 2},
                          "status": {"subscribed": True, "connects": 2, "disconnects": 1, "errors": 0,
                                     "last_rec": 2, "gaps": 0, "duplicates": 0, "bond_losses": 0}}},
     "btstack": {"meter": {"refused": "cannot bond"}}},

    {"id": "lost_bond",
     "about": "the meter is reset and forgets the hub's keys: the re-encryption with the stored "
              "bond fails, the hub says so once (bond-lost telemetry), pairs afresh, and stores "
              "nothing twice",
     "devices": {"meter": {"kind": "glucose", "address": "C0:5A:4B:01:04:01", "records": 2}},
     "steps": [("until", "meter", {"last_rec": 2}),
               ("forget_bond", "meter"),
               ("drop_link", "meter")],
     "expect": {"meter": {"records": [1, 2], "labels": {"glucose": 2, "connected": 2, "bond lost": 1},
                          "status": {"subscribed": True, "connects": 2, "disconnects": 1, "errors": 0,
                                     "last_rec": 2, "gaps": 0, "duplicates": 0, "bond_losses": 1,
                                     "needs_pairing": False}}},
     "btstack": {"meter": {"refused": "cannot bond"}}},

    {"id": "peer_mtu",
     "about": "the device starts an MTU exchange itself while the hub discovers its services: "
              "discovery still completes, the stored measurement arrives",
     "devices": {"thermo": {"kind": "thermo", "address": "C0:5A:4B:01:05:06", "stored": 1, "peer_mtu": 158}},
     "steps": [],
     "expect": {"thermo": {"labels": {"temperature": 1, "connected": 1},
                           "status": {"subscribed": True, "connects": 1, "errors": 0, "readings": 1,
                                      "mtu": 158}}}},

    {"id": "two_at_once",
     "about": "two meters and two thermometers advertising together: connects and discoveries take "
              "turns, every device ends subscribed without a refused attempt",
     "devices": {"meter1": {"kind": "glucose", "address": "C0:5A:4B:01:06:01", "records": 1},
                 "meter2": {"kind": "glucose", "address": "C0:5A:4B:01:06:02", "records": 2},
                 "thermo1": {"kind": "thermo", "address": "C0:5A:4B:01:06:06", "stored": 1},
                 "thermo2": {"kind": "thermo", "address": "C0:5A:4B:01:06:07", "stored": 1}},
     "steps": [],
     "expect": {"meter1": {"records": [1], "labels": {"glucose": 1, "connected": 1},
                           "status": {"subscribed": True, "connects": 1, "errors": 0, "last_rec": 1}},
                "meter2": {"records": [1, 2], "labels": {"glucose": 2, "connected": 1},
                           "status": {"subscribed": True, "connects": 1, "errors": 0, "last_rec": 2}},
                "thermo1": {"labels": {"temperature": 1, "connected": 1},
                            "status": {"subscribed": True, "connects": 1, "errors": 0}},
                "thermo2": {"labels": {"temperature": 1, "connected": 1},
                            "status": {"subscribed": True, "connects": 1, "errors": 0}}},
     "btstack": {"meter1": {"refused": "cannot bond"}, "meter2": {"refused": "cannot bond"}}},
]

IDS = [s["id"] for s in SCENARIOS]


def scenario(sid):
    for s in SCENARIOS:
        if s["id"] == sid:
            return s
    raise KeyError(sid)


def all_devices():
    """Every scenario's devices, as the bridge's device file lists them."""
    out = []
    for s in SCENARIOS:
        for spec in s["devices"].values():
            out.append(dict(spec))
    return out


def hub_name(address):
    """The device's address as the hub's status writes it (random static: "/r")."""
    return address + "/r"


def addr7(address):
    """The hub's 7-byte address: type 1 (random) then the 6 bytes, most significant first."""
    return bytes([1] + [int(x, 16) for x in address.split(":")])


def label(r):
    """What a stored reading counts as in an outcome, or None (not compared:
    battery, device information, clock stamps differ with what a device serves)."""
    m = r.get(MDC)
    if m in GLUCOSE_MDC and REC in r:
        return "glucose"
    if m in TEMPERATURE_MDC:
        ctx = r.get(CTX)
        return "interim temperature" if isinstance(ctx, dict) and ctx.get("interim") else "temperature"
    if m == BOND_LOST_MDC:
        return "bond lost"
    if m == CONNECTED_MDC:
        return "connected"
    return None


def expected(s, transport):
    """role -> the outcome the scenario expects on this transport."""
    out = dict(s["expect"])
    if transport == "btstack":
        for role, e in s.get("btstack", {}).items():
            out[role] = e
    return out


def steps(s, transport):
    """The scenario's steps on this transport: none for a device it refuses."""
    gone = expected_refused(s, transport)
    return [st for st in s["steps"] if st[1] not in gone]


def expected_refused(s, transport):
    return [role for role, e in expected(s, transport).items() if "refused" in e]


def outcome(s, readings, statuses, mtu_started=None):
    """The outcome of a run, the same shape on every transport.
    readings: [(addr7, reading dict)] as stored (what reached the journal);
    statuses: role -> the collector's status of the device (Device.stats());
    mtu_started: role -> MTU exchanges the emulated device started itself."""
    out = {}
    for role, spec in s["devices"].items():
        a = addr7(spec["address"])
        recs = []
        labels = {}
        for dev, r in readings:
            if bytes(dev) != a:
                continue
            name = label(r)
            if name is None:
                continue
            labels[name] = labels.get(name, 0) + 1
            if name == "glucose":
                recs.append(r[REC])
        out[role] = {"records": recs, "labels": labels, "status": statuses.get(role) or {},
                     "mtu_started": (mtu_started or {}).get(role, 0)}
    return out


def check(s, transport, got, stored=True):
    """Every way the outcome differs from what the scenario expects here, in words ([] when none).
    stored False: the run could not read the hub's journal (a board): the status only."""
    bad = []
    for role, e in expected(s, transport).items():
        g = got.get(role) or {"records": [], "labels": {}, "status": {}}
        st = g["status"]
        if "refused" in e:
            if e["refused"] not in (st.get("last_error") or ""):
                bad.append("%s: refused with %r, not %r" % (role, st.get("last_error"), e["refused"]))
            if st.get("subscribed") or st.get("readings") or g["records"] or g["labels"].get("glucose") \
                    or g["labels"].get("temperature"):
                bad.append("%s: refused, yet subscribed or stored: %r" % (role, g))
            continue
        if s["devices"][role].get("peer_mtu") and not g.get("mtu_started"):
            bad.append("%s: the device never started its MTU exchange (the scenario did not happen)" % role)
        if "records" in e and stored:
            twice = sorted(set(n for n in g["records"] if g["records"].count(n) > 1))
            if twice:
                bad.append("%s: records stored twice: %r" % (role, twice))
            if sorted(g["records"]) != e["records"]:
                bad.append("%s: records %r, expected %r" % (role, sorted(g["records"]), e["records"]))
        if stored and g["labels"] != e.get("labels", {}):
            bad.append("%s: stored %r, expected %r" % (role, g["labels"], e.get("labels", {})))
        for k, v in e.get("status", {}).items():
            have = st.get(k)
            if k in AT_LEAST:
                if not isinstance(have, int) or have < v:
                    bad.append("%s: status %s %r, expected at least %r" % (role, k, have, v))
            elif have != v:
                bad.append("%s: status %s %r, expected %r (last error: %r)" % (role, k, have, v,
                                                                             st.get("last_error")))
    return bad


def reached(want, st):
    """Whether a device's status meets an "until" step (numbers: at least; others: equal)."""
    for k, v in want.items():
        have = st.get(k)
        if isinstance(v, bool) or not isinstance(v, int):
            if have != v:
                return False
        elif not isinstance(have, int) or have < v:
            return False
    return True


def settled(s, transport, st_of):
    """Whether every device's status has reached what the scenario expects of it
    (when to stop waiting and compare); st_of(role) -> status dict."""
    for role, e in expected(s, transport).items():
        st = st_of(role) or {}
        if "refused" in e:
            if e["refused"] not in (st.get("last_error") or ""):
                return False
            continue
        want = {}
        for k, v in e.get("status", {}).items():
            if k in ("subscribed", "needs_pairing", "mtu") or k in AT_LEAST or \
                    k in ("connects", "last_rec", "bond_losses", "disconnects"):
                want[k] = v
        if not reached(want, st):
            return False
    return True
