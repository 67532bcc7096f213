# The board description (hardware/boards/<board>/board.json), copied to
# the root of the flash by the firmware build. Boards are data: pins and
# features come from here, never from constants in the code.

import json
from hub.errors import HubError

PATH = "/board.json"  # of a tree at the flash root
TREE = None  # the folder the running firmware came from (boot.py may put a deployed slot first)
_REQUIRED = ("name", "port", "arch", "features")


class BoardError(HubError):
    pass


def parse(text):
    try:
        b = json.loads(text)
    except ValueError as e:
        raise BoardError("board.json is not valid JSON: %s" % e)
    if not isinstance(b, dict):
        raise BoardError("board.json must hold an object")
    for k in _REQUIRED:
        if k not in b:
            raise BoardError("board.json lacks %r" % k)
    if not isinstance(b["features"], list):
        raise BoardError("board.json: features must be a list")
    b.setdefault("pins", {})
    return b


def find():
    """The firmware's folder: the first on sys.path that holds a board.json, so
    that the board description always comes with the code beside it (a
    deployed slot's, not a stale copy at the root). "/" when none does."""
    import sys
    for p in sys.path:
        d = p.rstrip("/")  # "" (the current folder, "/" at boot) becomes the root
        try:
            open(d + "/board.json").close()
            return d or "/"
        except OSError:
            pass
    return "/"


def load(path=None):
    global TREE
    if path is None:
        TREE = find()
        path = TREE.rstrip("/") + PATH
    try:
        with open(path) as f:
            return parse(f.read())
    except OSError:
        raise BoardError("no %s on the flash: deploy a firmware build for this board" % path)


def has(board, feature):
    return feature in board["features"]
