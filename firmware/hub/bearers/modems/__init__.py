# Vendor dialects of AT modems, one file per modem, kept small: only what
# differs between them. 3GPP TS 27.007 covers the SIM, registration,
# operator and signal; vendors differ in how a data context is configured
# and activated on the modem's own IP stack, in its TCP socket commands, in
# power-off, in how they number the access technology, and in whether
# AT+CESQ works. Each file holds one PROFILE dict; only the board's modem is
# imported (a profile's functions cost heap). Adding a modem (SIM7600/A7670,
# BG95) is one file here, plus a dialect in the simulator (host/samband/modem).
#
# PROFILE keys: name; act {AcT number: name}; cesq (bool); pdp(apn, user,
# password, auth) -> ((command, timeout_ms), ...); pdp_up_urc (or None);
# pdp_down_urc (a prefix); pdp_query; pdp_off (command, timeout_ms); pdp_off_urc (what the
# modem says once pdp_off has taken the context down, or None); ip(line) -> address;
# power_off (command, timeout_ms); pwrkey_ms; sock_max; sock_open(cid, host,
# port) -> command; sock_open_prefix; sock_send(cid, n); sock_read(cid, n);
# sock_close(cid); sock_urc(line) -> (cid, "data" | "closed") or None.

KEYS = ("name", "act", "cesq", "pdp", "pdp_up_urc", "pdp_down_urc", "pdp_query", "pdp_off", "pdp_off_urc", "ip",
        "power_off", "pwrkey_ms", "sock_max", "sock_open", "sock_open_prefix", "sock_send", "sock_read",
        "sock_close", "sock_urc")

# APN authentication, the same numbers on SIMCom CNCFG and Quectel QICSGP.
AUTH = {None: 0, "none": 0, "pap": 1, "chap": 2, "any": 3}


def ip_from(line):
    """'+CNACT: 0,1,"10.64.1.9"' / '+QIACT: 1,1,1,"10.64.1.9"': the address is the last field."""
    from hub.bearers.atparse import fields
    f = fields(line.split(":", 1)[1])
    return f[-1] if f and "." in f[-1] else None


def get(name):
    """The PROFILE of hub/bearers/modems/<name>.py."""
    for ch in name:  # a module name, never a path
        if ch not in "abcdefghijklmnopqrstuvwxyz0123456789_":
            raise ValueError("bad modem profile name %r" % name)
    try:
        mod = __import__("hub.bearers.modems." + name, None, None, ("PROFILE",))
    except ImportError:
        mod = None
    p = getattr(mod, "PROFILE", None)
    if p is None:
        raise ValueError("no modem profile %r (hub/bearers/modems/)" % name)
    return p
