# Helpers for the journal's firmware tests (both runtimes; scratch folders
# come from fwtest): payloads that say which seq they belong to, and
# append(): a record staged and committed at once, as the hub's Store does
# for an alarm. The journal itself decides no commit timing (hub/store.py does).

import os

from fwtest import rmtree
from hub.reading import PRIO_ROUTINE


def append(j, data, prio=PRIO_ROUTINE, size=None):
    """Store one record (data as for Journal.stage); returns its seq once it is durable."""
    seq = j.stage(data, prio, size)
    j.commit()
    return seq


def append_many(j, items, prio=PRIO_ROUTINE):
    """Store several records with one commit; returns their seqs once all are durable."""
    seqs = [j.stage(d, prio) for d in items]
    j.commit()
    return seqs


def payload(seq, size=None):
    """Bytes that only seq produces (size defaults to 10..49)."""
    n = size if size is not None else 10 + (seq * 37) % 40
    return bytes((seq * 7 + i * 13 + (seq >> 8)) & 0xFF for i in range(n))


def files(root):
    """{relative path: bytes} of every file under root."""
    out = {}

    def walk(d, rel):
        for n in sorted(os.listdir(d)):
            p = d + "/" + n
            try:
                with open(p, "rb") as f:
                    out[rel + n] = f.read()
            except OSError:
                walk(p, rel + n + "/")
    walk(root, "")
    return out


def restore(root, snapshot):
    """Make root hold exactly the files of a files() snapshot."""
    rmtree(root)
    os.mkdir(root)
    for rel in sorted(snapshot):
        parts = rel.split("/")
        d = root
        for p in parts[:-1]:
            d = d + "/" + p
            try:
                os.mkdir(d)
            except OSError:
                pass
        with open(root + "/" + rel, "wb") as f:
            f.write(snapshot[rel])
