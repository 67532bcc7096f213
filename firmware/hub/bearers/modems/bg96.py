# Quectel BG96 (LTE Cat-M / NB-IoT, EGPRS): data context with AT+QICSGP/AT+QIACT
# (AT+QIACT answers only once the context is up), sockets AT+QIOPEN/QISEND/QIRD
# with +QIOPEN and +QIURC URCs; reports Cat-M as AcT 8.

from hub.bearers.atparse import quote
from hub.bearers.modems import AUTH, ip_from


def _pdp(apn, user, password, auth):
    return (
        ("AT+QICSGP=1,1,%s,%s,%s,%d" % (quote(apn), quote(user or ""), quote(password or ""), AUTH[auth]), 5000),
        ("AT+QIACT=1", 150000),  # the manual's bound: up to 150 s
    )


def _sock_urc(line):
    # '+QIURC: "recv",0', '+QIURC: "closed",0'
    if line.startswith('+QIURC: "recv",'):
        return int(line[15:]), "data"
    if line.startswith('+QIURC: "closed",'):
        return int(line[17:]), "closed"
    return None


PROFILE = {
    "name": "bg96",
    "act": {0: "gsm", 8: "cat-m", 9: "nb-iot"},
    "cesq": True,
    "pdp": _pdp,
    "pdp_up_urc": None,
    "pdp_down_urc": '+QIURC: "pdpdeact"',  # ',<contextID>' follows (matched as a prefix)
    "pdp_query": "AT+QIACT?",
    "pdp_off": ("AT+QIDEACT=1", 40000),
    "pdp_off_urc": None,  # its OK is the end of it
    "ip": ip_from,
    "power_off": ("AT+QPOWD=1", 5000),
    "pwrkey_ms": 500,
    "sock_max": 12,
    "sock_open": lambda cid, host, port: "AT+QIOPEN=1,%d,\"TCP\",%s,%d,0,0" % (cid, quote(host), port),
    "sock_open_prefix": "+QIOPEN:",  # a URC after the OK: '+QIOPEN: <id>,<err>'
    "sock_send": lambda cid, n: "AT+QISEND=%d,%d" % (cid, n),
    "sock_read": lambda cid, n: "AT+QIRD=%d,%d" % (cid, n),
    "sock_close": lambda cid: "AT+QICLOSE=%d" % cid,
    "sock_urc": _sock_urc,
}
