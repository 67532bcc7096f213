# main.py for the virtual hub in tests/test_seal_vhub.py (test data, not
# firmware): seals readings in a loop, as the journal will, and appends
# every epoch header and sealed record to /sealtest.journal, one hex line
# each. Nothing else is written; no plaintext ever reaches the flash.
# /sealtest.mode says how sequence numbers survive a power cut:
#   wal  reserved on flash 8 at a time before use, like a proper journal
#        (after a cut some are skipped, none is reused)
#   lag  saved every 8 records after use: after a cut up to 8 are reused,
#        the worst a buggy journal could do
import os
import time

from hub import board, cbor, ports, seal

STEP = 8


def _int(path, default):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def _save(path, n):
    with open(path + ".tmp", "w") as f:
        f.write(str(n))
    os.rename(path + ".tmp", path)


mode = open("/sealtest.mode").read().strip()
log = open("/sealtest.journal", "ab")
log.write(b"\n")  # end a line a power cut may have cut short


def put(kind, data):
    log.write(kind + b" " + bytes(data).hex().encode() + b"\n")
    log.flush()


port = ports.load(board.load())
keys, sealer = seal.from_flash(port.unique_id(), on_epoch=lambda h: put(b"E", h))
seq = _int("/sealtest.seq", 1)
limit = seq
while True:
    if mode == "wal" and seq >= limit:
        limit = seq + STEP
        _save("/sealtest.seq", limit)
    reading = {"reading": "reading-%d" % seq, "mdc": 29112, "value": 54 + seq % 7, "exp": -1, "unit": "mmol/L"}
    put(b"R", sealer.seal(seq, cbor.dumps(reading)))
    seq += 1
    if mode == "lag" and seq % STEP == 0:
        _save("/sealtest.seq", seq)
    time.sleep_ms(3)
