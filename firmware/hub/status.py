# The hub's health in one small map: what `samband status`, `make run` and
# the telemetry records show. Pure apart from asking the port.

import gc

from hub import VERSION, board


def snapshot(port, boot, started_ms):
    gc.collect()  # so that heap figures count live objects, not garbage
    alloc, free = port.mem()
    fs_total, fs_free = port.fs()
    return {
        "version": VERSION,
        "tree": board.TREE,  # where the firmware runs from (samband deploy checks its switch)
        "board": port.board["name"],
        "port": port.name,
        "uid": "".join("%02x" % b for b in port.unique_id()),
        "boot": boot,
        "reset": port.reset_cause(),
        "uptime_ms": port.ticks_diff(port.ticks_ms(), started_ms),
        "heap_alloc": alloc,
        "heap_free": free,
        "fs_total": fs_total,
        "fs_free": fs_free,
        "clock": port.utc_ms() is not None,
    }
