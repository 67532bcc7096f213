# Record Access Control Point 0x2A52 (reference sections 2.5, 3.7, 6):
# every request the hub writes and every indication a meter sends back,
# shared by GLS, CGMS and PLXS. RACP payloads never carry an E2E-CRC.
#
# Fields: {"op", "operator"} plus, by op code and operator:
#   report/delete/count (1, 2, 4) with operator <= / >= (2, 3):
#       "filter" (filter type) and "value"; within range (4): "filter",
#       "min", "max". Filter 1 (GLS sequence number, CGMS time offset) is
#       a uint16, filter 2 (GLS user-facing time) a Date Time; other filter
#       types keep their operand raw as bytes (a range is split in half).
#   number of stored records response (5): "count" (uint16 in GLS, CGMS
#       and PLXS; a 4-octet operand is read as uint32, "width": 4)
#   response code (6): "request" (the request op code), "code"
#   anything else: the operand, raw, as "operand" (bytes), when present.
# Not a measurement: decode() returns [].

from hub.profiles.wire import Reader, Writer

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_U = const(0x2A52)

# op codes
REPORT = const(0x01)
DELETE = const(0x02)
ABORT = const(0x03)
COUNT = const(0x04)
COUNT_RESPONSE = const(0x05)
RESPONSE = const(0x06)
# operators
NULL = const(0x00)
ALL = const(0x01)
LE = const(0x02)
GE = const(0x03)
RANGE = const(0x04)
FIRST = const(0x05)
LAST = const(0x06)
# filter types
FILTER_SEQ = const(0x01)   # GLS sequence number (uint16)
FILTER_TIME = const(0x02)  # GLS user-facing time (Date Time)
FILTER_TOFF = const(0x01)  # CGMS time offset (uint16 minutes)
# response code values
SUCCESS = const(0x01)
OP_NOT_SUPPORTED = const(0x02)
INVALID_OPERATOR = const(0x03)
OPERATOR_NOT_SUPPORTED = const(0x04)
INVALID_OPERAND = const(0x05)
NO_RECORDS = const(0x06)
ABORT_UNSUCCESSFUL = const(0x07)
NOT_COMPLETED = const(0x08)
OPERAND_NOT_SUPPORTED = const(0x09)

CODES = {1: "success", 2: "op code not supported", 3: "invalid operator",
         4: "operator not supported", 5: "invalid operand", 6: "no records found",
         7: "abort unsuccessful", 8: "procedure not completed", 9: "operand not supported"}


def _filter_value(r, ft, what, size):
    if ft == FILTER_SEQ:
        return r.u16(what)
    if ft == FILTER_TIME:
        return r.date_time(what)
    return r.raw(size, what) if size else r.rest()


def parse_racp(data):
    r = Reader(_U, data)
    op = r.u8("op code")
    out = {"op": op, "operator": r.u8("operator")}
    oper = out["operator"]
    if op in (REPORT, DELETE, COUNT) and oper in (LE, GE, RANGE):
        ft = r.u8("filter type")
        out["filter"] = ft
        if oper == RANGE:
            half = 0
            if ft not in (FILTER_SEQ, FILTER_TIME):
                if r.left() % 2:
                    r.err("range operand of unknown filter type %d has odd length %d" % (ft, r.left()))
                half = r.left() // 2
                if half == 0:
                    r.err("truncated: range operand missing")
            out["min"] = _filter_value(r, ft, "minimum", half)
            out["max"] = _filter_value(r, ft, "maximum", half)
        else:
            out["value"] = _filter_value(r, ft, "filter value", 0)
            if out["value"] == b"":
                r.err("truncated: filter value missing")
    elif op == COUNT_RESPONSE:
        if r.left() == 4:
            out["count"] = r.u32("number of records")
            out["width"] = 4
        else:
            out["count"] = r.u16("number of records")
    elif op == RESPONSE:
        out["request"] = r.u8("request op code")
        out["code"] = r.u8("response code")
    elif r.left():
        out["operand"] = r.rest()
    return out


def _put_filter(w, ft, v, what):
    if ft == FILTER_SEQ:
        w.u16(v, what)
    elif ft == FILTER_TIME:
        w.date_time(v, what)
    else:
        w.raw(v, what)


def encode_racp(fields):
    w = Writer(_U)
    op = fields.get("op")
    oper = fields.get("operator", NULL)
    w.u8(op, "op code")
    w.u8(oper, "operator")
    if op in (REPORT, DELETE, COUNT) and oper in (LE, GE, RANGE):
        ft = fields.get("filter")
        w.u8(ft, "filter type")
        if oper == RANGE:
            lo, hi = fields.get("min"), fields.get("max")
            if ft not in (FILTER_SEQ, FILTER_TIME) and (
                    not isinstance(lo, (bytes, bytearray)) or not isinstance(hi, (bytes, bytearray))
                    or len(lo) != len(hi) or not lo):
                w.err("range of filter type %r needs two operands of equal length" % (ft,))
            _put_filter(w, ft, lo, "minimum")
            _put_filter(w, ft, hi, "maximum")
        else:
            v = fields.get("value")
            if isinstance(v, (bytes, bytearray)) and not v:
                w.err("filter value missing")
            _put_filter(w, ft, v, "filter value")
    elif op == COUNT_RESPONSE:
        n = fields.get("count")
        if fields.get("width") == 4 or (isinstance(n, int) and n > 0xFFFF):
            w.u32(n, "number of records")
        else:
            w.u16(n, "number of records")
    elif op == RESPONSE:
        w.u8(fields.get("request"), "request op code")
        w.u8(fields.get("code"), "response code")
    elif "operand" in fields:
        w.raw(fields["operand"], "operand")
    return w.bytes()


# ------------------------------------------------------- requests the hub sends

def request(op, operator=ALL, ftype=None, value=None, lo=None, hi=None):
    """A RACP request: request(REPORT), request(REPORT, GE, FILTER_SEQ, 10), request(COUNT,
    RANGE, FILTER_SEQ, lo=5, hi=10), request(ABORT, NULL)."""
    f = {"op": op, "operator": operator}
    if ftype is not None:
        f["filter"] = ftype
    if value is not None:
        f["value"] = value
    if lo is not None:
        f["min"] = lo
        f["max"] = hi
    return encode_racp(f)


def report_all():
    return request(REPORT, ALL)


def report_from(seq, ftype=FILTER_SEQ):
    """Records with sequence number (CGMS: time offset) >= seq: the hub's usual catch-up."""
    return request(REPORT, GE, ftype, seq)


def abort():
    return request(ABORT, NULL)


def delete_all():
    return request(DELETE, ALL)


def result(fields):
    """For a response: (request op code, response code), or (COUNT, count) for a count response;
    None for anything else."""
    op = fields.get("op")
    if op == RESPONSE:
        return fields["request"], fields["code"]
    if op == COUNT_RESPONSE:
        return COUNT, fields["count"]
    return None
