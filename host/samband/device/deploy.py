"""`samband deploy`: a firmware tree (build/<board>/) onto a hub over its raw REPL.

Why this shape: a technician deploys over a USB cable that can be pulled,
onto a board that can lose power, and a hub that boots half of one build
and half of another is worse than either. So the running tree is never
written. The new tree is assembled whole in the other slot folder
(/fw/a or /fw/b), hashed again on the hub and compared with the build, and
only then does one rename of the pointer file /fw/active switch to it
(littlefs renames atomically); firmware/boot.py puts the slot the pointer
names first on sys.path. A power cut before that rename boots the old tree,
after it the new one. No pointer means the tree at the flash root (a board
set up by copying files, or a virtual hub's first boot).

Only what changed crosses the cable: the hub hashes the running tree
(sha256, on the hub), files whose hash matches the build are copied from
the running tree into the slot on the hub itself. The two root files a board
runs by name (boot.py, main.py) are loaders, the same for every tree; they
are replaced one by one (a temporary file renamed over the old) before the
switch, only when they differ.

Afterwards the hub is soft-reset into its application, and the running
application is asked `?status` on its console: it must report the new
slot as its tree.
"""

from __future__ import annotations

import base64
import errno
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samband.device import build
from samband.errors import HubError, HubRaised, NoAnswer, SambandError

if TYPE_CHECKING:
    from samband.device.transport import Hub

LOADERS = ("boot.py", "main.py")  # run by name from the flash root, whatever the tree
SLOTS = ("a", "b")
FW = "/fw"
POINTER = FW + "/active"
CHUNK = 1024  # bytes of a file per raw-REPL command (its repr is at most 4 KB of source on the hub)
CONFIRM_S = 30.0  # the application's boot, up to its console answering
RESTARTED = b"soft reboot"  # printed by every MicroPython port as it soft-resets
RESTART_S = 5.0  # from Ctrl-D to that line


class DeployError(SambandError):
    pass


# -- pure: what to do ---------------------------------------------------------------

def plan(local: dict[str, str], remote: dict[str, str | None]) -> tuple[list[str], list[str], list[str]]:
    """What a deploy must do, from {path: sha256} of the build and of the hub's
    running tree (a path missing on the hub maps to None).

    Returns (send, keep, loaders): build paths to send over the cable, build
    paths the hub can copy from its running tree, and the loader files that
    differ at the flash root."""
    loaders = sorted(p for p in LOADERS if p in local and remote.get(p) != local[p])
    send = sorted(p for p in local if p not in LOADERS and remote.get(p) != local[p])
    keep = sorted(p for p in local if p not in LOADERS and remote.get(p) == local[p])
    return send, keep, loaders


def other_slot(active: str | None) -> str:
    """The slot to stage into: never the one running (None = the flash root)."""
    return "b" if active == "a" else "a"


def parse_hashes(text: str) -> dict[str, str | None]:
    """Lines "path hex" (or "path -" for a missing file) from the hub, to a map."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        path, _, digest = line.rpartition(" ")
        if not path:
            raise HubError(f"hub sent a malformed hash line: {line!r}")
        out[path] = None if digest == "-" else digest
    return out


def room(free: int, total: int, need: Iterable[int], block: int = 4096, keep: float = 0.10) -> str | None:
    """None if a staging copy of `need` file sizes fits in `free` bytes and still
    leaves `keep` of the flash to the journal; else why not, in words. Each file
    is counted in whole blocks (littlefs's worst case), so the check errs on the
    side of the hub's readings."""
    want = sum(-(-n // block) * block for n in need)
    left = free - want
    if left >= keep * total:
        return None
    return (f"the hub's flash has {free // 1024} KiB free, a second tree needs up to {want // 1024} KiB and "
            f"{int(keep * 100)}% must stay free for readings: deliver the backlog first (samband selftest), "
            f"then deploy")


def check_board(tree_board: str, hub_board: str | None, port: str) -> None:
    if hub_board is not None and hub_board != tree_board:
        raise DeployError(f"the hub on {port} is a {hub_board}, the build is for {tree_board}: "
                          f"deploy build/{hub_board}/ (samband deploy {port} --board {hub_board})")


# -- hub-side code (MicroPython, run in the raw REPL) ---------------------------------

HUB_HELPERS = """\
import os, hashlib, binascii
def _sd_hash(p):
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
def _sd_hashes(base, paths):
    for r in paths:
        try:
            print(r, _sd_hash(base + '/' + r))
        except OSError:
            print(r, '-')
def _sd_walk(d, rel, out):
    for e in os.ilistdir(d):
        p = rel + e[0]
        if e[1] == 0x4000:
            _sd_walk(d + '/' + e[0], p + '/', out)
        else:
            out.append(p)
    return out
def _sd_rm(d):
    try:
        es = list(os.ilistdir(d))
    except OSError:
        return
    for e in es:
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            _sd_rm(p)
        else:
            os.remove(p)
    os.rmdir(d)
def _sd_mkdirs(p):
    c = ''
    for part in p.strip('/').split('/'):
        c += '/' + part
        try:
            os.mkdir(c)
        except OSError:
            pass
def _sd_copy(src, dst):
    b = bytearray(512)
    m = memoryview(b)
    with open(src, 'rb') as i, open(dst, 'wb') as o:
        while True:
            n = i.readinto(b)
            if not n:
                break
            o.write(m[:n])
def _sd_read(p):
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return None
"""


class _Session:
    """The deploy's conversation with one hub, in small raw-REPL commands, with a
    hook before each (`step(name)`) so that tests can cut the power at every step."""

    def __init__(self, hub: Hub, step: Callable[[str], None] | None = None) -> None:
        self.hub = hub
        self.step = step or (lambda name: None)
        self.wire = 0  # bytes of file data commands sent
        self.staging = None  # the slot being filled, until the switch

    def run(self, name: str, code: str, timeout: float = 30) -> str:
        self.step(name)
        return self.hub.exec(code, timeout=timeout)

    def write_file(self, path: str, data: bytes, sent: Callable[[int], None]) -> None:
        """Write data to path in CHUNK pieces, base64 on the wire (4 bytes a 3, where
        repr() of compiled bytecode costs up to 4 a byte: it is mostly not text);
        sent(n) after each piece."""
        self.run("send", "_sd_f = open(%r, 'wb')" % path)
        for i in range(0, len(data), CHUNK):
            piece = data[i:i + CHUNK]
            cmd = "_sd_f.write(binascii.a2b_base64(%r))" % base64.b64encode(piece).decode()
            self.wire += len(cmd)
            self.run("send", cmd)
            sent(len(piece))
        self.run("send", "_sd_f.close()\ndel _sd_f")


def _exec_json(s: _Session, name: str, expr: str) -> Any:
    out = s.run(name, f"import json\nprint(json.dumps({expr}))").strip().splitlines()
    try:
        return json.loads(out[-1])
    except (IndexError, ValueError):
        raise HubError(f"hub sent no answer to {name}: {out!r}") from None


def deploy(port: str, tree: str | Path, progress: Callable[[int, int], None] | None = None,
           step: Callable[[str], None] | None = None, log: Callable[[str], None] | None = None,
           confirm: bool = True) -> dict[str, Any]:
    """Deploy a built tree to the hub on port. Returns a summary map.

    progress(done, total) follows the bytes sent over the cable; step(name) is
    called before every command sent to the hub (for power-cut tests); log(str)
    tells what is happening, one line a phase."""
    from samband.device.transport import Hub
    tree = Path(tree)
    if not (tree / "board.json").is_file():
        raise DeployError(f"{tree} is not a firmware build (no board.json): run `samband firmware`")
    local = build.tree(tree)
    log = log or (lambda msg: None)
    with Hub(port) as hub:
        s = _Session(hub, step)
        try:
            summary = _copy_and_switch(s, port, tree, local, progress, log)
            log("restarting the application")
            s.step("restart")
            restart(hub)
            hub.t = None  # the serial port is closed; nothing left to leave
        except (SambandError, KeyboardInterrupt) as e:
            # refused or failed before the switch: the hub goes back to running its tree
            answering = not isinstance(e, NoAnswer)
            if hub.t is not None:
                try:
                    if s.staging and answering:  # a half-filled slot would only take the journal's room
                        hub.exec("try:\n    _sd_f.close()\nexcept Exception:\n    pass\n_sd_rm(%r)" % s.staging,
                                 timeout=60)
                except SambandError:
                    pass
                try:
                    restart(hub)
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    pass
                hub.t = None
            if isinstance(e, HubRaised) and e.errno == errno.ENOSPC:
                raise DeployError("the hub's flash filled up while the new tree was copied; the copy was removed "
                                  "and the hub runs its old tree: deliver the backlog first, then deploy") from None
            raise
    if confirm:
        summary["status"] = confirm_running(port, summary["tree"])
    return summary


def _copy_and_switch(s: _Session, port: str, tree: Path, local: dict[str, str],
                     progress: Callable[[int, int], None] | None, log: Callable[[str], None]) -> dict[str, Any]:
    try:
        tree_board = json.loads((tree / "board.json").read_text())["name"]
    except (ValueError, KeyError, TypeError):
        raise DeployError(f"{tree}/board.json does not name a board: rebuild it (samband firmware)") from None
    s.run("helpers", HUB_HELPERS)
    active, hub_board = _running_tree(s)
    check_board(tree_board, hub_board, port)
    base = f"{FW}/{active}" if active else ""
    paths = sorted(p for p in local if p not in LOADERS)
    remote = parse_hashes(s.run("hash", "_sd_hashes(%r, %r)" % (base, paths), timeout=120))
    remote.update(parse_hashes(s.run("hash", "_sd_hashes('', %r)" % (list(LOADERS),))))
    send, keep, loaders = plan(local, remote)
    total = sum((tree / p).stat().st_size for p in send + loaders)
    done = [0]

    def sent(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], total)

    log(f"hub runs {base or 'the flash root'}; {len(send) + len(loaders)} of {len(local)} files changed")
    for p in loaders:  # the same for every tree, so either version boots either tree
        s.write_file(f"/{p}.new", (tree / p).read_bytes(), sent)
        s.run("loader", "os.rename(%r, %r)" % (f"/{p}.new", f"/{p}"))
    summary = {"port": port, "board": tree_board, "files": len(local), "sent": len(send) + len(loaders),
               "bytes": total, "tree": base or "/", "switched": False, "wire": s.wire}
    if not send:
        if not loaders:
            log("nothing to copy: the hub already runs this build")
        return summary
    slot = other_slot(active)
    staging = f"{FW}/{slot}"
    s.run("stage", "_sd_rm(%r)" % staging)  # an earlier tree there: its room is free for this one
    st = _exec_json(s, "stage", "list(os.statvfs('/'))")
    why = room(st[0] * st[3], st[0] * st[2], [(tree / p).stat().st_size for p in local if p not in LOADERS],
               block=st[0])
    if why:
        raise DeployError(why)
    s.staging = staging
    _stage(s, tree, local, base, staging, keep, send, sent)
    log("verifying on the hub")
    _verify(s, staging, {p: local[p] for p in paths}, base)
    # the switch: one rename of a fully written pointer (littlefs renames atomically; a closed file is synced)
    s.run("switch", "_sd_mkdirs(%r)\nwith open(%r, 'w') as _sd_f:\n    _sd_f.write(%r)\nos.rename(%r, %r)"
          % (FW, POINTER + ".new", slot, POINTER + ".new", POINTER))
    s.staging = None
    summary.update(tree=staging, switched=True, wire=s.wire)
    return summary


def _running_tree(s: _Session) -> tuple[str | None, str | None]:
    """(slot the hub boots or None for the flash root, the board its board.json names or None)."""
    active = _exec_json(s, "pointer", "_sd_read(%r)" % POINTER)
    if active not in SLOTS or _exec_json(s, "pointer", "_sd_read('%s/%s/board.json') is not None"
                                         % (FW, active)) is not True:
        active = None  # boot.py falls back to the root the same way
    text = _exec_json(s, "board", "_sd_read(%r)" % (f"{FW}/{active}/board.json" if active else "/board.json"))
    try:
        return active, json.loads(text).get("name") if text else None
    except (ValueError, AttributeError):
        return active, None


def _stage(s: _Session, tree: Path, local: dict[str, str], base: str, staging: str, keep: list[str],
           send: list[str], sent: Callable[[int], None]) -> None:
    """The whole new tree in the staging slot: unchanged files copied on the hub, the rest sent."""
    s.run("stage", "_sd_rm(%r)\n_sd_mkdirs(%r)" % (staging, staging))
    dirs = sorted({str(Path(p).parent) for p in local if "/" in p})
    if dirs:
        s.run("stage", "\n".join("_sd_mkdirs(%r)" % f"{staging}/{d}" for d in dirs))
    for p in keep:
        s.run("copy", "_sd_copy(%r, %r)" % (f"{base}/{p}", f"{staging}/{p}"))
    for p in send:
        s.write_file(f"{staging}/{p}", (tree / p).read_bytes(), sent)


def _verify(s: _Session, staging: str, want: dict[str, str], base: str) -> None:
    """Hash the staged tree again on the hub: exactly the build's files, each with the build's hash."""
    listed = _exec_json(s, "verify", "_sd_walk(%r, '', [])" % staging)
    got = parse_hashes(s.run("verify", "_sd_hashes(%r, %r)" % (staging, sorted(want)), timeout=120))
    wrong = sorted(p for p in want if got.get(p) != want[p]) + sorted(set(listed) - set(want))
    if wrong:
        raise DeployError(f"the copy on the hub differs from the build ({', '.join(wrong[:3])}"
                          f"{'...' if len(wrong) > 3 else ''}); the hub still runs {base or 'the flash root'}: "
                          f"deploy again")

def restart(hub: Hub) -> None:
    """Leave the raw REPL (so that main.py runs: a board skips it after a soft reset
    in the raw REPL) and soft-reset from the friendly REPL. Waits until the hub
    says it is rebooting: bytes the next tool sends before that reach the
    interpreter that is going down and are lost with it (its Ctrl-A for the raw
    REPL, say), so the port is handed back only once they go to the new one."""
    t = hub.t
    try:
        t.exit_raw_repl()
        t.serial.write(b"\x04")
        t.serial.flush()
        t.read_until(1, RESTARTED, timeout=RESTART_S, timeout_overall=RESTART_S)
    finally:
        t.close()


def confirm_running(port: str, want_tree: str | None, timeout: float = CONFIRM_S) -> dict[str, Any]:
    """Ask the restarted application for its status until it answers; it must
    run from want_tree. Re-asks every second: the request may arrive while the
    hub is still booting, before its console reads."""
    from samband.device import console
    end = time.monotonic() + timeout
    with console.open_port(port) as ser:
        while time.monotonic() < end:
            s = console.status(ser, timeout=min(1.0, max(0.1, end - time.monotonic())))
            if s is not None:
                if s.get("tree") != want_tree:
                    raise DeployError(f"after the deploy the hub runs {s.get('tree')}, not {want_tree}: "
                                      f"is its boot.py this build's? (samband deploy again)")
                return s
    raise DeployError(f"the hub on {port} did not answer ?status within {timeout:.0f} s after the restart: "
                      f"watch its console (samband console {port})")


def hub_board(port: str, timeout: float = 3.0) -> str | None:
    """Which board the hub on port says it is: asked of its running application
    first (which it does not stop), else read from its flash over the raw REPL."""
    from samband.device import console
    from samband.device.transport import Hub
    with console.open_port(port) as ser:
        st = console.status(ser, timeout=timeout)
    if st and st.get("board"):
        return st["board"]
    with Hub(port) as hub:
        s = _Session(hub)
        try:
            s.run("helpers", HUB_HELPERS)
            name = _running_tree(s)[1]
        finally:
            restart(hub)  # it was stopped to be asked: it runs again
            hub.t = None
    if name is None:
        raise DeployError(f"the hub on {port} has no firmware that names its board: give --board "
                          f"(samband boards lists them)")
    return name
