# Cross-check driver: reads cases from stdin, one per line, and answers
# one line each, so that tests/test_cbor_crosscheck.py can compare the hub's
# codec with cbor2 on the unix port (and on CPython).
#   E <literal>   -> our encoding, hex
#   D <hex>       -> our decoding, as a literal; or "ERR <message>"
# Literals are Python syntax, with floats as F("<big-endian double hex>")
# so that every bit of a float survives the trip.

import struct

from fwtest import serve_lines

from hub import cbor


def F(h):
    return struct.unpack(">d", bytes.fromhex(h))[0]


def lit(v):
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return 'F("%s")' % struct.pack(">d", v).hex()
    if isinstance(v, (str, bytes)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(lit(k) + ": " + lit(v[k]) for k in v) + "}"
    if isinstance(v, cbor.Tag):
        return "T(%d, %s)" % (v.tag, lit(v.value))
    raise TypeError(type(v))


def answer(line):
    kind, arg = line[0], line[2:]
    try:
        if kind == "E":
            return cbor.dumps(eval(arg, {"F": F, "T": cbor.Tag})).hex()
        return lit(cbor.loads(bytes.fromhex(arg)))
    except cbor.CBORError as e:
        return "ERR " + str(e)


def main(inp=None, out=None):
    serve_lines(answer, inp, out)


if __name__ == "__main__":
    main()
