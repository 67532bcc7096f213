# Small persistent counters (boot count) kept on flash. Written to a
# temporary file and renamed over the old one, which littlefs and POSIX
# both make atomic, so a power cut leaves either the old or the new value.
# Nothing secret or medical is ever kept here.

import os

DIR = "/state"


def _path(name):
    return DIR + "/" + name


def read_int(name, default=0):
    try:
        with open(_path(name)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def mkdirs(path):
    """Make path and its parents; existing folders are fine."""
    cur = ""
    for part in path.strip("/").split("/"):
        cur += "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass


def write_int(name, value):
    mkdirs(DIR)
    tmp = _path(name + ".tmp")
    with open(tmp, "w") as f:
        f.write(str(value))
    os.rename(tmp, _path(name))


def next_boot():
    """Count this boot; the boot number tags hub times that have no UTC."""
    n = read_int("boot") + 1
    write_int("boot", n)
    return n
