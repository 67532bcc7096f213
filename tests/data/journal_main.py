# main.py for the virtual hub in tests/test_journal_vhub.py: the journal
# under load while the host pulls the plug (SIGKILL) at random moments.
#
# Appends records without pause, alarms now and then, and plays uplink
# and receiver: offers pending records (alarms first) and acknowledges a
# random part of what it offered, out of order. Each boot the uplink is
# down with some chance (backlogs build up and drain); with
# SAMBAND_JOURNAL_NOACK set it never acks. Every line it prints ends
# with a checksum, so that a line cut by a kill is recognisably cut:
#   BOOT next pending alarms damaged torn    after mount
#   A seq prio       append returned: the record is durable
#   S seq            offered for sending
#   k seq,seq,...    ack starting
#   K seq,seq,...    ack returned: delivered
import os
import sys
from binascii import crc32

from hub.journal import Journal
from hub.reading import PRIO_ALARM, PRIO_ROUTINE
from hub.segment import ROUTINE

SEG = 2048
CAPACITY = 768 * SEG  # more than 200 boots can append with the uplink down: no eviction here


def say(body):
    sys.stdout.write("%s #%d\n" % (body, crc32(body.encode()) & 0xFFFF))


def payload(seq):
    n = 12 + (seq * 37) % 50
    return bytes((seq * 7 + i * 13) & 0xFF for i in range(n))


def main():
    sys.stdout.write("\n")  # whatever the last kill cut off ends here
    j = Journal("/journal", capacity=CAPACITY, segment_size=SEG)
    st = j.stats()
    say("BOOT %d %d %d %d %d" % (st["next_seq"], st["pending"], st["pending_alarms"], st["damaged"], st["torn"]))
    rnd = os.urandom
    online = not os.getenv("SAMBAND_JOURNAL_NOACK") and rnd(1)[0] < 180
    while True:
        b = rnd(2)
        p = PRIO_ALARM if b[0] < 12 else PRIO_ROUTINE
        seq = j.stage(payload, p)
        j.commit()
        say("A %d %d" % (seq, p))
        if online and b[1] < 40:
            # the uplink: alarms first, then routine in order; the receiver acks some, out of order
            sent = []
            for q, _pr, _d, _c in j.alarms():
                say("S %d" % q)
                sent.append(q)
            for q, _pr, _d, _c in j.pending(ROUTINE):
                if len(sent) >= 24:
                    break
                say("S %d" % q)
                sent.append(q)
            pick = [q for q in sent if rnd(1)[0] < 200]
            if pick:
                body = ",".join("%d" % q for q in pick)
                say("k " + body)
                j.ack(pick)
                say("K " + body)


main()
