# Update helpers shared by the firmware tests of hub.ota (test_ota.py) and of the
# journal's room beside an update (test_journal_room.py): the test data, a /fw
# folder holding the old tree in slot a, and the broker's offer and chunk messages.
import os

from fwtest import data_path
from hub import cbor, ota, otatree

CS = 256


def read(name):
    with open(data_path(name), "rb") as f:
        return f.read()


def install_old(fw):
    """fw (a new folder) as a hub's /fw: the old tree in slot a, confirmed."""
    os.mkdir(fw + "/a")
    u = otatree.Unpacker(fw + "/a")
    u.feed(read("ota/old.tree"))
    u.finish()
    ota.write_pointer("a", fw)
    return fw


def offer(o, name="ota/good.sbr", cs=CS):
    """The broker's offer of release `name` to o; returns the image's chunks."""
    rel = read(name)
    from hub import release
    _, _, start = release.split_header(rel)
    o.on_message(cbor.dumps({"o": rel[:start], "cs": cs}))
    img = rel[start:]
    return [img[i:i + cs] for i in range(0, len(img), cs)]


def chunk(o, i, data):
    o.on_message(cbor.dumps({"c": i, "d": data}))
