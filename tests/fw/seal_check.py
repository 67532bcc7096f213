# Driver for tests/test_seal.py: seals on the unix port (or CPython) what
# stdin asks for and prints every epoch header and record, in order.
#   I hub_id hub_sk kid receiver_pk first_epoch   a new Sealer ("a boot"); epochs count up
#                                                 from first_epoch
#   S seq plaintext                               seal ("-" is empty)
#   N seq n                                       seal n bytes repeating "<seq>:"
#   T                                             rotate (new epoch at the next seal)
#   K kid receiver_pk                             seal to another receiver key
# Output: "E <header hex>" and "R <record hex>", or "ERR <message>".

import os
import sys

from hub import seal


def _put(out, kind, data):
    # in pieces: a 4 KB record would be an 8 KB string under a 100 KB heap
    out.write(kind + " ")
    for i in range(0, len(data), 256):
        out.write(bytes(data[i:i + 256]).hex())
    out.write("\n")


class Counter:
    def __init__(self, first):
        self.n = first - 1

    def reserve(self):
        self.n += 1
        return self.n


def _b(f):
    return b"" if f == "-" else bytes.fromhex(f)


def main(inp, out):
    s = None

    def on_epoch(h):
        _put(out, "E", h)

    while True:
        line = inp.readline()
        if not line:
            break
        f = line.split()
        if not f:
            continue
        try:
            if f[0] == "I":
                receiver = (int(f[3]), _b(f[4]))
                s = seal.Sealer(_b(f[1]), _b(f[2]), receiver, Counter(int(f[5])), os.urandom, on_epoch)
            elif f[0] == "S":
                _put(out, "R", s.seal(int(f[1]), _b(f[2])))
            elif f[0] == "N":
                seq, n = int(f[1]), int(f[2])
                pattern = b"%d:" % seq
                m = (pattern * (n // len(pattern) + 1))[:n]
                _put(out, "R", s.seal(seq, m))
            elif f[0] == "T":  # a new epoch: the receiver key set again, unchanged
                s.set_receiver(receiver)
            elif f[0] == "K":
                receiver = (int(f[1]), _b(f[2]))
                s.set_receiver(receiver)
        except ValueError as e:
            out.write("ERR %s\n" % e)


if __name__ == "__main__":
    main(sys.stdin, sys.stdout)
