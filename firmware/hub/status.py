# The hub's health in one small map: what `samband status`, `make run` and
# the telemetry records show. Pure apart from asking the port.

import gc
import json

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


def emit(s, out):
    """Write the STATUS line for map s to the stream out, the JSON streamed piece by piece
    (json.dump writes each part to the stream as it goes). Why not print("STATUS " +
    json.dumps(s)): that needs the whole line, 3-4 KB with six devices, as one block of
    heap twice over, and a long-running heap may have the bytes but not the block: after
    60 simulated hours the soak (samband.rig.soak) found the hub with 83 KB free and a
    MemoryError for its status."""
    out.write("STATUS ")
    json.dump(s, out)
    out.write("\n")
