"""Every failure of the `samband` command is one line `samband: <what and what to do>` and
exit code 1, never a traceback; `readings` reads the one default database and never creates
one; every option says what it is for. Each case runs the real command in a subprocess."""

import argparse
import json
import os
import pty
import shutil
import socket
import subprocess
import sys

import pytest

from hub import reading
from samband import cli
from samband.receiver.store import open_store


def env_with(tmp_path, **more):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    env.pop("SAMBAND_DB", None)
    env.update(more)
    return env


def run(*args, env=None, timeout=60, **kw):
    return subprocess.run([sys.executable, "-m", "samband.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def one_line(p, *words):
    """The command failed with exit 1 and one line on stderr that holds these words."""
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("samband: "), p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- provision

def test_provision_refuses_bad_arguments_before_writing_anything(tmp_path):
    flash, depot = tmp_path / "flash", tmp_path / "depot"
    base = ("provision", "--flash", str(flash), "--depot", str(depot))
    one_line(run(*base, "--uid", "zz"), "--uid 'zz'", "hex")
    one_line(run(*base, "--broker", "host:99999"), "--broker 'host:99999'", "1 to 65535")
    one_line(run(*base, "--broker", "host"), "HOST:PORT")
    one_line(run(*base, "--pairing", "-5"), "--pairing -5", "seconds")
    one_line(run(*base, "--broker-ca", "/etc/passwd"), "--broker-ca /etc/passwd", "not a certificate")
    one_line(run(*base, "--broker-ca", str(tmp_path / "missing.pem")), "No such file")
    one_line(run(*base, "--device", "glucose=C0:FF:EE:00:00:01", "--device", "bp=c0:ff:ee:00:00:01"),
             "C0:FF:EE:00:00:01 is given twice", "once")
    one_line(run(*base, "--device", "glucose=C0:FF:EE:00:00:01", "--device", "glucose=C0:FF:EE:00:00:01"),
             "given twice")
    assert not flash.exists() and not depot.exists()  # refused before a key was made


def test_provision_takes_a_real_certificate(tmp_path):
    from samband.rig.broker import make_certs
    make_certs(tmp_path, "localhost")  # a CA as the rigs make one
    ca = tmp_path / "ca.pem"
    p = run("provision", "--flash", str(tmp_path / "f"), "--depot", str(tmp_path / "d"), "--broker-ca", str(ca),
            "--broker", "[::1]:8883")
    assert p.returncode == 0, p.stderr
    from samband.vhub import Flash
    flash = Flash(tmp_path / "f")  # the virtual hub's flash image
    assert flash.read("/keys/ca.der") == (tmp_path / "ca.der").read_bytes()
    cfg = json.loads(flash.read("/config/hub.json"))
    assert cfg["uplink"] == {"host": "::1", "port": 8883}


# ---------------------------------------------------------------- readings and the database

def _db_with_readings(path):
    st = open_store(str(path))
    dev = b"\x01\xc0\x5a\x4b\x00\x00\x01"
    rows = [
        (1, 1, reading.make(1, dev, 160184, 104, [1, 10], unit="mg/dL", dts=1700000000, hts=1700000000123, rec=7)),
        (2, 1, reading.make(2, dev, 150020, [128, 84, 98], [1, 11], unit="mm[Hg]", comp=[150021, 150022, 150023],
                            hts=1700000001000)),
        (3, 1, reading.make(3, dev, 150364, 3670, [1, 12], exp=-2, unit="Cel", prio=reading.PRIO_ALARM)),
        (4, 1, reading.make(4, dev, 67108868, 1, [1, 13], prio=reading.PRIO_TELEMETRY)),
    ]
    st.store("00005a4d0001", rows)
    st.close()


def test_readings_refuses_a_missing_database_and_creates_none(tmp_path):
    env = env_with(tmp_path)
    missing = tmp_path / "missing.db"
    one_line(run("readings", "--db", str(missing), env=env), f"no database at {missing}", "--db")
    assert not missing.exists()
    # the default database, outside the source tree, is named; nothing is created in the current folder
    p = run("readings", env=env, cwd=tmp_path)
    one_line(p, str(tmp_path / "data" / "samband" / "samband.db"), "make run")
    assert not (tmp_path / "samband.db").exists() and not (tmp_path / "data").exists()
    p = run("readings", env=env_with(tmp_path, SAMBAND_DB=str(tmp_path / "mine.db")))
    one_line(p, str(tmp_path / "mine.db"))


def test_readings_on_a_file_that_is_not_a_database(tmp_path):
    junk = tmp_path / "notes.db"
    junk.write_text("these are not readings\n" * 100)
    one_line(run("readings", "--db", str(junk)), "is not a samband database", "--db")
    assert junk.read_text() == "these are not readings\n" * 100
    one_line(run("readings", "--db", str(tmp_path)), "is a folder")


def test_readings_from_an_unreachable_postgresql(tmp_path):
    port = free_port()
    line = one_line(run("readings", "--db", f"postgresql://samband:s3cret@127.0.0.1:{port}/samband"),
                    "cannot open the PostgreSQL database", f"127.0.0.1:{port}")
    assert "s3cret" not in line  # the password is not printed


def test_readings_table_has_names_units_and_local_time(tmp_path):
    db = tmp_path / "r.db"
    _db_with_readings(db)
    p = run("readings", "--db", str(db), "--format", "table")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "glucose" in out and "104 mg/dL" in out and "record 7" in out
    assert "blood pressure" in out and "128/84/98 mmHg" in out
    assert "body temperature" in out and "36.70 °C" in out and "ALARM" in out
    assert "bond lost" in out and "telemetry" in out
    assert "mdc" not in out.lower().replace("mdc)", "")  # names, not codes
    import time
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1700000000.123)) in out
    assert "2023-11-14 22:13:20" in out  # the device's own clock fields, as it gave them
    # not a terminal: JSON stays the default for scripts
    p = run("readings", "--db", str(db))
    assert [r["mdc"] for r in json.loads(p.stdout)] == [160184, 150020, 150364, 67108868]


def test_receive_with_a_missing_ca_file(tmp_path):
    one_line(run("receive", "--ca", str(tmp_path / "ca.pem"), "--db", str(tmp_path / "r.db")),
             f"--ca {tmp_path / 'ca.pem'}", "No such file")
    one_line(run("receive", "--password-file", str(tmp_path / "pw"), "--db", str(tmp_path / "r.db")),
             "--password-file", "MQTT password")


# ---------------------------------------------------------------- broken pipes

def _run_into_closed_pipe(args, env=None):
    """Run with stdout a pipe whose reader is gone already (`| head -c1` that has finished)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "samband.cli", *args], stdout=w, stderr=subprocess.PIPE,
                           text=True, timeout=60, env=env)
    finally:
        os.close(w)
    return p


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    db = tmp_path / "r.db"
    _db_with_readings(db)
    for fmt in ("json", "csv", "table"):
        p = _run_into_closed_pipe(["readings", "--db", str(db), "--format", fmt])
        assert p.returncode == 1 and p.stderr == "", (fmt, p.stderr)


def test_status_into_head_and_on_ports_that_are_no_hub(tmp_path):
    from conftest import firmware_tree

    from samband.vhub import VirtualHub
    firmware_tree()
    # status --json | head -c1: the reader leaves after one byte, the command leaves quietly
    with VirtualHub(tmp_path / "flash", heap="256k") as hub:
        sh = subprocess.run(f"{sys.executable} -m samband.cli status --json {hub.port} | head -c1",
                            shell=True, capture_output=True, text=True, timeout=60)
        assert sh.stdout == "{" and sh.stderr == "", sh.stderr
        p = _run_into_closed_pipe(["status", "--json", hub.port])
        assert p.returncode == 1 and p.stderr == "", p.stderr
    # a file is not a serial port; a missing port says how to list them
    one_line(run("status", "/etc/passwd"), "/etc/passwd is not a serial port", "ls /dev/tty")
    one_line(run("status", str(tmp_path / "ttyUSB9")), "no serial port", "ls /dev/tty")
    # a terminal with no hub behind it: no stray b'' from mpremote, a line that says what to check
    master, slave = pty.openpty()
    try:
        p = run("status", os.ttyname(slave))
        assert p.stdout == "", p.stdout
        one_line(p, "no MicroPython hub answered", os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)


def test_status_on_a_port_without_permission(tmp_path):
    master, slave = pty.openpty()
    port = os.ttyname(slave)
    try:
        os.chmod(port, 0o600)
        cmd = [sys.executable, "-m", "samband.cli", "status", port]
        if os.geteuid() == 0:  # root opens anything: ask as nobody
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv to drop privileges")
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
        else:
            os.chmod(port, 0)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
        one_line(p, f"no permission to open {port}", "sudo")
    finally:
        os.close(master)
        os.close(slave)


# ---------------------------------------------------------------- the command table

def test_every_option_of_every_command_has_help():
    ap = cli.parser()
    missing = []

    def walk(parser, path):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, path + [name])
                continue
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if not a.help:
                missing.append(" ".join(path) + " " + (a.option_strings[0] if a.option_strings else a.dest))
    walk(ap, ["samband"])
    assert not missing, "options without help: " + ", ".join(missing)


def test_an_unexpected_error_is_one_line_that_says_it_is_a_bug(monkeypatch, capsys):
    def broken(args):
        raise KeyError("oops")
    monkeypatch.setattr(cli.hub, "cmd_boards", broken)
    assert cli.main(["boards"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("samband: internal error in `samband boards`")
    assert "bug" in err and "-v" in err
    with pytest.raises(KeyError):
        cli.main(["-v", "boards"])


def test_reading_names_come_from_the_firmware():
    from samband import reading_text
    ids = reading_text.reference_ids()
    assert ids[150020] == "PRESS_BLD_NONINV" and ids[160212] == "CONC_GLU_ISF"
    # words only for reference ids the firmware has (a renamed constant shows here, not as a code on screen)
    assert set(reading_text.WORDS) <= set(ids.values()), set(reading_text.WORDS) - set(ids.values())
    assert reading_text.name(160184) == "glucose" and reading_text.name(1) == "mdc 1"
    assert reading_text.value({"val": float("nan"), "unit": "Cel"}) == "NaN °C"
    assert reading_text.value({"val": "NaN", "unit": "mg/dL"}) == "NaN mg/dL"  # as the database keeps it
    assert reading_text.value({"val": [1, 2, 3], "unit": "uV"}) == "3 values µV"
