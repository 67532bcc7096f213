# The journal's segment files: their bytes, and a scanner that finds every
# intact record in them however damaged they are. docs/journal.md has the
# picture; hub/journal.py decides what goes where.
#
# A segment file is a 20-byte header and then frames, back to back:
#
#   header  "SJ" | version u8 | stream u8 | segno u32 | base u32 | limit u32 | crc32 u32
#   frame   len|prio<<14 u16 | seq u32 | payload (len bytes) | crc32 u32
#
# All integers little-endian. The frame's CRC-32 (binascii.crc32, as zlib)
# covers its first six bytes and the payload, so a torn or flipped frame
# never passes for a record, and because every frame carries its own
# sequence number a damaged header or a damaged neighbour costs nothing
# else. A length of 0 is invalid: zero fill never looks like a frame, and
# erased flash (0xFF) would claim 16383 bytes and fail its CRC.
#
# prio 0..2 is a record (reading.PRIO_*). prio 3 is a context frame: a
# blob that the records after it need, such as the sealer's epoch header.
# Its seq is that of the record it was written before; it is not a record
# and takes no part in the order of sequence numbers.
#
# Runs unchanged on MicroPython (unix port, ESP32, RP2) and CPython.

import struct
from binascii import crc32

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAGIC = b"SJ"
VERSION = const(1)
HEADER = const(20)
FRAME = const(10)  # bytes a frame adds to its payload
MAX_PAYLOAD = const(0x3FFF)
_PRIO_SHIFT = const(14)
_LEN_MASK = const(0x3FFF)

CONTEXT = const(3)   # prio of a context frame

ROUTINE = const(0)  # stream of routine and telemetry records
ALARM = const(1)    # stream of alarm records
SUFFIX = ("r", "a")  # file name suffix per stream


def name(segno, stream):
    return "%08x.%s" % (segno, SUFFIX[stream])


def parse_name(n):
    """(segno, stream) for a segment file name, None for anything else."""
    if len(n) != 10 or n[8] != "." or n[9] not in SUFFIX:
        return None
    try:
        return int(n[:8], 16), SUFFIX.index(n[9])
    except ValueError:
        return None


def header(stream, segno, base, limit):
    h = struct.pack("<2sBBIII", MAGIC, VERSION, stream, segno, base, limit)
    return h + struct.pack("<I", crc32(h))


def parse_header(buf, n):
    """(stream, segno, base, limit) from the first bytes of buf, or None if damaged."""
    if n < HEADER:
        return None
    magic, ver, stream, segno, base, limit = struct.unpack_from("<2sBBIII", buf, 0)
    if magic != MAGIC or ver != VERSION or stream > 1:
        return None
    if crc32(memoryview(buf)[:HEADER - 4]) != struct.unpack_from("<I", buf, HEADER - 4)[0]:
        return None
    return stream, segno, base, limit


def put_frame(buf, seq, prio, data, fill=None):
    """Write one frame at the start of the bytearray buf (at least payload +
    FRAME long); returns its length. With fill, data is the payload's length
    and fill(seq, view) writes the payload in place (Sealer.seal_into)."""
    n = data if fill else len(data)
    struct.pack_into("<HI", buf, 0, n | prio << _PRIO_SHIFT, seq)
    mv = memoryview(buf)
    if fill is None:
        mv[6:6 + n] = data
    else:
        fill(seq, mv[6:6 + n])
    struct.pack_into("<I", buf, 6 + n, crc32(mv[:6 + n]))
    return n + FRAME


def frames(buf, end, pos=HEADER, after=-1, context=False):
    """Walk buf[pos:end]: yields (pos, seq, prio, length) for every intact
    record frame whose seq is above `after` and above the frame before it
    (and for context frames too if context), and (pos, -1, 0, nbytes) for
    every damaged stretch in between or at the end.

    After a damaged stretch the scanner resynchronises byte by byte: a
    candidate must have a nonzero length that fits, a sequence number
    above the last good one, and a matching CRC-32."""
    mv = memoryview(buf)
    bad = -1
    while pos + FRAME <= end:
        # fields by hand: struct would allocate a tuple per candidate
        n = buf[pos] | (buf[pos + 1] & 0x3F) << 8
        e = pos + 6 + n
        if n and e + 4 <= end:
            seq = buf[pos + 2] | buf[pos + 3] << 8 | buf[pos + 4] << 16 | buf[pos + 5] << 24
            ok = seq > after and crc32(mv[pos:e]) == (buf[e] | buf[e + 1] << 8 | buf[e + 2] << 16 | buf[e + 3] << 24)
        else:
            ok = False
        if ok:
            if bad >= 0:
                yield bad, -1, 0, pos - bad
                bad = -1
            prio = buf[pos + 1] >> 6
            if prio != CONTEXT:
                yield pos, seq, prio, n
                after = seq
            elif context:
                yield pos, seq, prio, n
            pos = e + 4
        else:
            if bad < 0:
                bad = pos
            pos += 1
    if bad < 0 and pos < end:
        bad = pos
    if bad >= 0:
        yield bad, -1, 0, end - bad
