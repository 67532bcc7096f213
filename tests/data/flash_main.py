# main.py for the virtual hub in tests/test_flash.py: what survives a power
# cut on the hub's flash image. /flashtest.mode says what to do:
#   files    write /synced.txt and close it, then write /unsynced.txt and
#            append to /synced.txt without closing or flushing either
#   journal  store one record (staged and committed: durable), then stage
#            one for a group commit that the cut beats: staged, not committed
#   churn    what a hub does all day: a counter replaced by rename, journal
#            appends and acks, a file that grows and is deleted
# Every line ends with a checksum, so a line a cut shortened is recognisable.
import asyncio
import os
import sys
import time
from binascii import crc32

from hub.journal import Journal
from hub.reading import PRIO_ROUTINE


def say(body):
    sys.stdout.write("%s #%d\n" % (body, crc32(body.encode()) & 0xFFFF))


def files():
    with open("/synced.txt", "w") as f:
        f.write("synced")
    say("SYNCED")
    f = open("/unsynced.txt", "w")
    f.write("u" * 3000)  # more than littlefs's cache: blocks are programmed, the file is not committed
    g = open("/synced.txt", "a")
    g.write(" and more")
    say("WRITTEN")
    while True:
        time.sleep_ms(100)


async def journal_main():
    j = Journal("/journal", capacity=16 * 4096, segment_size=4096)
    seq = j.stage(b"durable", PRIO_ROUTINE)
    j.commit()
    say("STORED %d" % seq)
    # A record waiting for its group commit (the hub's Store commits it later):
    # its producer is told STORED only after the commit, which the cut beats.
    j.stage(b"waiting", PRIO_ROUTINE)
    say("STAGED %d" % j.stats()["next_seq"])
    while True:
        await asyncio.sleep_ms(100)


def _int(path):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def churn():
    n = _int("/counter")
    j = Journal("/journal", capacity=32 * 4096, segment_size=4096)
    say("BOOT %d %d %d" % (n, j.stats()["damaged"], j.stats()["pending"]))
    while True:
        n += 1
        with open("/counter.tmp", "w") as f:
            f.write(str(n))
        os.rename("/counter.tmp", "/counter")
        j.stage(b"record %d" % n, PRIO_ROUTINE)
        j.commit()
        if n % 3 == 0:  # the receiver acks a little faster than records come: the backlog stays small
            acks = []
            for s, _p, _d, _c in j.pending():
                acks.append(s)
                if len(acks) == 4:
                    break
            j.ack(acks)
        with open("/grow", "a") as f:
            f.write("x" * 300)
        if n % 20 == 0:
            os.remove("/grow")
        say("N %d" % n)


sys.stdout.write("\n")  # ends a line the last cut left unfinished on the console
mode = open("/flashtest.mode").read().strip()
if mode == "files":
    files()
elif mode == "journal":
    asyncio.run(journal_main())
else:
    churn()
