# hub.status.emit: the STATUS line streamed to the console. The soak (samband.rig.soak)
# found a hub 60 simulated hours into one boot with 83 KB of heap free and a MemoryError
# for its status: print("STATUS " + json.dumps(...)) needed the 3-4 KB line as one block.
import gc
import io
import json

from fwtest import IS_MPY, raises
from hub import status


def _status_map():
    # about the size of a hub's status with six devices
    devs = [{"addr": "C0:5A:4B:00:02:0%d/r" % i, "kind": "cgm", "connected": True, "readings": 1000 + i,
             "last_error": "x" * 200} for i in range(12)]
    return {"version": "0.1", "heap_alloc": 123456, "ble": {"devices": devs, "memory_errors": 0}, "problems": []}


class _Sink(io.IOBase):
    """A console that keeps nothing: the length and a checksum of what was written."""

    def __init__(self):
        self.n = 0
        self.sum = 0

    def write(self, data):
        for c in data:  # str from a caller; bytes from MicroPython's stream adaptor (json.dump)
            self.sum = (self.sum * 31 + (c if isinstance(c, int) else ord(c))) & 0xFFFFFF
        self.n += len(data)
        return len(data)


def _digest(text):
    s = _Sink()
    s.write(text)
    return s.n, s.sum


def test_the_line_is_the_json_of_the_map_prefixed():
    s = _status_map()
    out = io.StringIO()
    status.emit(s, out)
    line = out.getvalue()
    assert line.startswith("STATUS ") and line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line[len("STATUS "):]) == s


def test_a_fragmented_heap_with_no_block_as_large_as_the_line_still_gets_it():
    if not IS_MPY:
        return  # CPython's heap does not fragment this way
    s = _status_map()
    want = _digest("STATUS " + json.dumps(s) + "\n")
    assert want[0] > 3000
    gc.collect()
    blocks = []
    try:
        while True:
            blocks.append(bytearray(480))
    except MemoryError:
        pass
    for i in range(0, len(blocks), 2):
        blocks[i] = None  # half the heap free again, in holes of about 512 bytes
    gc.collect()
    try:
        assert gc.mem_free() > 4 * want[0]
        raises(MemoryError, json.dumps, s)  # the line as one string does not fit anywhere
        sink = _Sink()
        status.emit(s, sink)
        assert (sink.n, sink.sum) == want
    finally:
        blocks = None
        gc.collect()
