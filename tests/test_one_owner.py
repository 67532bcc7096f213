"""One owner per wire format, public seams only (issue 11): checked on the source.

The firmware owns the bridge frame codes (hub/ble/bridge.py) and the sealing
format (hub/seal.py); the host imports them. A copy somewhere else drifts
silently when the owner changes, so these tests fail if a module other than
the owner binds one of the owner's format names to the owner's value, or
defines one of its codec functions. They also fail if a module imports a
private name from another module, or reaches into an imported module's
private names, instead of using a public one.
"""

import ast

from samband.paths import FIRMWARE, REPO

HOST = REPO / "host" / "samband"
OWNERS = {
    FIRMWARE / "hub" / "ble" / "bridge.py": ("REQ", "OK", "ERR", "EVENT", "KEYREQ", "KEYREP", "MAX_FRAME"),
    FIRMWARE / "hub" / "seal.py": ("V_RECORD", "V_EPOCH", "V_CONFIG", "V_BATCH", "RECORD_HEADER", "RECORD_OVERHEAD",
                                   "EPOCH_BYTES", "MAX_SPAN", "MAX_RECEIVERS", "EPOCH_LABEL", "CONFIG_LABEL",
                                   "SEQ_MAX", "MAX_BATCH_BYTES", "MAX_BATCH_ITEMS", "LEB_MAX_BYTES"),
}
# The seal's codecs: only their owner defines them (the receiver's unbatch wraps
# seal.unbatch to name a rejection reason, so that name is not on this list).
# Deliberate copies, each checked against its owner elsewhere: none today.
ALLOWED = {}
OWNED_FUNCTIONS = ("record_nonce", "epoch_tag", "config_tag", "parse_config", "read_len", "epoch_of",
                   "batch_room", "batch_into")
# The first byte of a sealed object says what it is (V_RECORD ... V_BATCH): testing or
# writing it as a literal (`out[0] = 0x13`, `ctx[0] == 0x11`) outside hub/seal.py
# re-implements the format. Other formats whose first byte may share a value and that
# are written this way go here with their reason.
FORMAT_BYTES = ("V_RECORD", "V_EPOCH", "V_CONFIG", "V_BATCH")
FORMAT_BYTE_ELSEWHERE = {}
# MicroPython's asyncio has no public way to wait for a socket to become readable or writable;
# its own open_connection (extmod/asyncio/stream.py) yields core._io_queue.queue_write(s) to wait
# for a connect, and a pinned bearer socket (made, bound to its veth, then connected) must do the same.
REACH_INS_ALLOWED = {"firmware/hub/bearers/pinned.py": ["core._io_queue", "core._io_queue"]}


def _sources():
    for root in (FIRMWARE, HOST):
        yield from sorted(root.rglob("*.py"))


def _owned_values():
    """{name: value} of every format name, read from the owners' source."""
    out = {}
    for path, names in OWNERS.items():
        tree = ast.parse(path.read_text())
        for name, value in _module_constants(tree):
            if name in names:
                out[name] = value
        assert set(names) <= set(out), f"{path} no longer defines {set(names) - set(out)}"
    return out


def _module_constants(tree):
    """(name, literal value) of each module-level assignment, tuples unpacked."""
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                pairs = [(target, node.value)]
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = zip(target.elts, node.value.elts)
            else:
                continue
            for t, v in pairs:
                if isinstance(t, ast.Name) and _arithmetic(v):
                    yield t.id, eval(compile(ast.Expression(v), "<constant>", "eval"), {"__builtins__": {}})


def _arithmetic(node):
    """Whether node is a literal or arithmetic on literals (2 ** 63 - 1), safe to evaluate."""
    return all(isinstance(n, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.expr_context))
               for n in ast.walk(node))


def format_copies(source, owned):
    """Lines of source that copy a format name with its owner's value, or define an owned codec."""
    tree = ast.parse(source)
    out = [name for name, value in _module_constants(tree) if owned.get(name, object()) == value]
    out += [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in OWNED_FUNCTIONS]
    return out


def format_bytes(source, owned):
    """Lines that test or write a sealed object's first byte as a literal format byte."""
    values = {owned[n] for n in FORMAT_BYTES}

    def first_byte(n):
        return isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and n.slice.value == 0

    def literal(n):
        return isinstance(n, ast.Constant) and type(n.value) is int and n.value in values

    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left] + node.comparators
            if any(first_byte(x) for x in sides) and any(literal(x) for x in sides):
                out.append(node.lineno)
        elif isinstance(node, ast.Assign) and any(first_byte(t) for t in node.targets) and literal(node.value):
            out.append(node.lineno)
    return sorted(out)


def private_reach_ins(source):
    """`from m import _name`, and `m._name` where m is a module this source imports."""
    tree = ast.parse(source)
    modules, out = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    out.append(f"from {node.module} import {a.name}")
                else:
                    modules.add(a.asname or a.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            out.append(f"{node.value.id}.{node.attr}")
    return out


def private_member_reach_ins(source):
    """`x._name` where x is an object (not self or cls, not an imported module: see
    private_reach_ins) and nothing in this source defines `_name`: another class's private
    method or attribute."""
    tree = ast.parse(source)
    defined, modules = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules.update((a.asname or a.name).split(".")[0] for a in node.names)
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and node.attr not in defined
                and not (isinstance(node.value, ast.Name) and node.value.id in modules | {"self", "cls"})):
            out.append(f"{ast.unparse(node.value)}.{node.attr}")
    return out


# namedtuple's own API is named with a leading underscore so as not to clash with fields
MEMBER_REACH_INS_ALLOWED = {"host/samband/receiver/store.py": ["u._replace"]}


def test_the_checks_find_what_they_look_for():
    # The copies this branch removed, as they were: each check must see them.
    owned = _owned_values()
    assert format_copies("REQ, OK, ERR, EVENT, KEYREQ, KEYREP = 0, 1, 2, 3, 4, 5\nMAX_FRAME = 0xFFFF\n",
                         owned) == ["REQ", "OK", "ERR", "EVENT", "KEYREQ", "KEYREP", "MAX_FRAME"]
    assert format_copies("V_RECORD, V_EPOCH, V_CONFIG, V_BATCH = 0x10, 0x11, 0x12, 0x13\n"
                         "def record_nonce(kid, epoch, seq):\n    pass\n", owned) == \
        ["V_RECORD", "V_EPOCH", "V_CONFIG", "V_BATCH", "record_nonce"]
    assert format_copies("OK = 'ok'\nREQ = 7\n", owned) == []  # the same name, another meaning
    # the uplink's own batch bytes, as they were before it used hub.seal's
    assert format_bytes("if ctx[1:2] and ctx[0] == 0x11:\n    pass\nout[0] = 0x13\nok = 0x13 == b[0]\n"
                        "mqtt[0] = 0x30\nx = b[1] == 0x11\n", owned) == [1, 3, 4]
    # hub.otahttp and hub.otafw calling hub.ota's Ota by private names, as they did
    assert private_member_reach_ins("def fetch(o, up):\n    o._store(1, b'')\n    up._ctx()\n    o.tell()\n"
                                    "class A:\n    def _own(self):\n        a._own()\n        self._x()\n") == \
        ["o._store", "up._ctx"]
    assert private_reach_ins("from hub.mqtt import _wait_ms, ticks_ms\nfrom hub import mqtt\n"
                             "mqtt._wait_ms(1)\nself._x\n") == ["from hub.mqtt import _wait_ms", "mqtt._wait_ms"]


def _scan(check, skip=()):
    """{source path: what check(source) found} over firmware/ and host/, skip left out."""
    found = {}
    for path in _sources():
        hits = None if path in skip else check(path.read_text())
        if hits:
            found[str(path.relative_to(REPO))] = hits
    return found


def test_every_format_name_has_one_owner():
    owned = _owned_values()
    assert _scan(lambda src: format_copies(src, owned), OWNERS) == ALLOWED, \
        "import these from their owner (firmware/hub/ble/bridge.py, firmware/hub/seal.py)"


def test_no_literal_format_byte_outside_its_owner():
    owned = _owned_values()
    assert _scan(lambda src: format_bytes(src, owned), (FIRMWARE / "hub" / "seal.py",)) == FORMAT_BYTE_ELSEWHERE, \
        "use hub.seal's V_* names or its functions (epoch_of, batch_into)"


def test_no_module_reaches_into_another_modules_private_names():
    assert _scan(private_reach_ins) == REACH_INS_ALLOWED, "use or add a public name (issue 11, public seams)"


def test_no_module_calls_another_classs_private_members():
    assert _scan(private_member_reach_ins) == MEMBER_REACH_INS_ALLOWED, \
        "use or add a public method (issue 11, public seams)"


def test_the_receiver_uses_the_owners_codecs():
    from hub import seal
    from samband.receiver import opener

    assert opener.record_nonce is seal.record_nonce and opener.parse_config is seal.parse_config
    assert opener.epoch_tag is seal.epoch_tag and opener.config_tag is seal.config_tag
