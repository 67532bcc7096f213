# SIMCom SIM7080G (LTE Cat-M / NB-IoT): data context with AT+CNCFG/AT+CNACT
# (PDP index 0 on cid 1), the +APP PDP URC, sockets AT+CAOPEN/CASEND/CARECV.

from hub.bearers.atparse import quote
from hub.bearers.modems import AUTH, ip_from


def _pdp(apn, user, password, auth):
    creds = ""
    if user is not None:
        creds = ",%s,%s,%d" % (quote(user), quote(password or ""), AUTH[auth])
    return (
        ("AT+CNCFG=0,1,%s%s" % (quote(apn), creds), 5000),
        ("AT+CNACT=0,1", 30000),  # OK at once, then the +APP PDP: 0,ACTIVE URC
    )


def _sock_urc(line):
    # '+CADATAIND: 0' (data waiting), '+CASTATE: 0,0' (closed by the peer)
    if line.startswith("+CADATAIND: "):
        return int(line[12:]), "data"
    if line.startswith("+CASTATE: ") and line.endswith(",0"):
        return int(line[10:-2]), "closed"
    return None


PROFILE = {
    "name": "sim7080g",
    "act": {0: "gsm", 7: "cat-m", 9: "nb-iot"},
    "cesq": False,
    "pdp": _pdp,
    "pdp_up_urc": "+APP PDP: 0,ACTIVE",  # wait for this after the last pdp command
    "pdp_down_urc": "+APP PDP: 0,DEACTIVE",
    "pdp_query": "AT+CNACT?",
    "pdp_off": ("AT+CNACT=0,0", 10000),
    "pdp_off_urc": "+APP PDP: 0,DEACTIVE",  # after the OK: SIM7080 AT manual, AT+CNACT
    "ip": ip_from,
    "power_off": ("AT+CPOWD=1", 5000),
    "pwrkey_ms": 1000,  # PWRKEY low for > 1 s (SIM7080 hardware design)
    "sock_max": 12,
    "sock_open": lambda cid, host, port: "AT+CAOPEN=%d,0,\"TCP\",%s,%d" % (cid, quote(host), port),
    "sock_open_prefix": "+CAOPEN:",  # '+CAOPEN: <cid>,<result>' in the reply
    "sock_send": lambda cid, n: "AT+CASEND=%d,%d" % (cid, n),
    "sock_read": lambda cid, n: "AT+CARECV=%d,%d" % (cid, n),
    "sock_close": lambda cid: "AT+CACLOSE=%d" % cid,
    "sock_urc": _sock_urc,
}
