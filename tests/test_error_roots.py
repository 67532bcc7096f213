"""One error root per side, and no decisions by message text (issue 11).

Every firmware error class derives from hub.errors.HubError, every host one
from samband.errors.SambandError: checked on the source, so that a new class
with a native base of its own fails here. Code that catches an error decides
by its class or attributes, never by looking into str(e).
"""

import ast
import builtins
import errno
import subprocess
import sys

from samband.errors import HubRaised, SambandError
from samband.paths import FIRMWARE, REPO

HOST = REPO / "host" / "samband"
NATIVE = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


def _sources(*roots):
    for root in roots:
        yield from sorted(root.rglob("*.py"))


def rootless(source, root):
    """Classes of source that subclass a built-in exception without also subclassing root
    (classes that derive from another class of the project inherit its root)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in node.bases]
        if any(b in NATIVE for b in bases) and root not in bases and node.name != root:
            out.append(node.name)
    return out


def text_decisions(source):
    """Lines that test an exception's message: `"x" in str(e)`, `str(e).startswith(...)`
    where e is the name an except clause bound."""
    out = []
    for handler in ast.walk(ast.parse(source)):
        if not isinstance(handler, ast.ExceptHandler) or not handler.name:
            continue

        def is_text(n, name=handler.name):
            return (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("str", "repr")
                    and len(n.args) == 1 and isinstance(n.args[0], ast.Name) and n.args[0].id == name)

        for node in ast.walk(handler):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) \
                    and any(is_text(c) for c in node.comparators):
                out.append(node.lineno)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("startswith", "endswith") and is_text(node.func.value):
                out.append(node.lineno)
    return sorted(set(out))


def test_the_checks_find_what_they_look_for():
    assert rootless("class AError(ValueError):\n    pass\nclass BError(HubError):\n    pass\n"
                    "class CError(AError):\n    pass\nclass Thing:\n    pass\n", "HubError") == ["AError"]
    assert rootless("class BleError(OSError):\n    pass\n", "HubError") == ["BleError"]
    # collect.py's lost-bond test and deploy.py's, as they were
    assert text_decisions("try:\n    f()\nexcept BleError as e:\n"
                          "    if \"KEY_MISSING\" not in str(e) and \"0x06\" not in str(e):\n        raise\n") == [4]
    assert text_decisions("try:\n    f()\nexcept E as e:\n    a = not str(e).startswith('no answer')\n"
                          "    log('failed: %s' % e)\n    why = str(e)\n") == [4]


def test_every_firmware_error_derives_from_hub_error():
    found = {}
    for path in _sources(FIRMWARE):
        if path == FIRMWARE / "hub" / "errors.py":
            continue
        names = rootless(path.read_text(), "HubError")
        if names:
            found[str(path.relative_to(REPO))] = names
    assert found == {}, "derive from hub.errors.HubError (docs/development.md)"


def test_every_host_error_derives_from_samband_error():
    found = {}
    for path in _sources(HOST):
        names = rootless(path.read_text(), "SambandError")
        if names:
            found[str(path.relative_to(REPO))] = names
    assert found == {}, "derive from samband.errors.SambandError (docs/development.md)"


def test_the_roots_are_what_callers_catch():
    from hub.ble import BleError
    from hub.errors import HubError
    from samband.bridge.client import BridgeRequestError
    from samband.bridge.server import BridgeError
    from samband.bridge.sim import SimError

    e = BleError("pair: refused", "key-missing")
    assert isinstance(e, HubError) and isinstance(e, ValueError) and not isinstance(e, OSError)
    assert e.reason == "key-missing" and str(e) == "pair: refused" and BleError("x").reason is None
    for cls in (BridgeError, BridgeRequestError, SimError):
        assert issubclass(cls, SambandError), cls


def test_no_decision_by_message_text():
    found = {}
    for path in _sources(FIRMWARE, HOST):
        lines = text_decisions(path.read_text())
        if lines:
            found[str(path.relative_to(REPO))] = lines
    assert found == {}, "test the error's class or an attribute (a reason, an errno), not its text"


def test_what_the_hub_raised_is_read_once():
    e = HubRaised("OSError: [Errno 28] ENOSPC")
    assert (e.kind, e.errno, str(e)) == ("OSError", 28, "hub raised: OSError: [Errno 28] ENOSPC")
    assert (HubRaised("OSError: 28").kind, HubRaised("OSError: 28").errno) == ("OSError", 28)
    e = HubRaised("ImportError: no module named 'hub'")
    assert (e.kind, e.errno) == ("ImportError", None)
    assert HubRaised("OSError: link lost: 28 frames").errno is None  # a message, not an errno
    assert HubRaised("(nothing said)").kind is None


def test_alerts_list_before_any_alert_says_so(tmp_path):
    from samband.receiver.store import open_store
    db = tmp_path / "r.db"
    open_store(db).close()  # a receiver's database, no alerts tables yet
    p = subprocess.run([sys.executable, "-m", "samband.cli", "alerts", "--db", str(db), "list"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.strip() == (
        "samband: no alerts in this database yet: `samband alerts --rules FILE` creates them"), p.stderr


def test_a_virtual_hub_says_what_it_raised(tmp_path):
    # the hub's own words over its raw REPL, read once by the transport into kind and errno
    from conftest import firmware_tree

    from samband.device.transport import Hub
    from samband.vhub import VirtualHub

    firmware_tree()
    with VirtualHub(tmp_path / "flash", heap="256k") as hub, Hub(hub.port) as h:
        try:
            h.exec("open('/no/such/file')")
        except HubRaised as e:
            assert (e.kind, e.errno) == ("OSError", errno.ENOENT), str(e)
        else:
            raise AssertionError("open of a missing file did not raise on the hub")
        try:
            h.exec("import no_such_module")
        except HubRaised as e:
            assert (e.kind, e.errno) == ("ImportError", None), str(e)
        else:
            raise AssertionError("a missing module did not raise on the hub")
        assert h.exec("print(6 * 7)").strip() == "42"  # the hub answers on after both
