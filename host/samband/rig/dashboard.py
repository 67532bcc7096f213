"""The clinician dashboard beside `make run`, on the rig's database.

Why a process of its own: it is `samband dashboard` exactly as a receiver site
runs it (waitress, its own log), started with the rig and stopped with it
(SIGTERM ends it as Ctrl-C does). It listens on localhost only, on
127.0.0.1:8080 when that is free (an address to bookmark), else on a free port.

The login: the rig makes one demo user (a doctor, who may acknowledge clinical
alerts) on first run, with a random password written to a 0600 file in the
rig's folder and never on a command line, where other users of the machine
could read it (ps). A rerun keeps both."""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import sys
import threading
from pathlib import Path

from samband.errors import SambandError

DEMO_USER = "demo"
DEMO_ROLE = "doctor"
LISTEN = ("127.0.0.1:8080", "127.0.0.1:0")
START_S = 60


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def demo_login(folder: Path) -> tuple[Path, Path]:
    """(users file, login file) in folder, made on first use: one user, its password in the login file."""
    from samband.receiver.dashboard import users
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    users_file, login_file = folder / "users.toml", folder / "demo-login"
    if not (users_file.exists() and login_file.exists()):
        pw = secrets.token_urlsafe(12)
        _write_private(users_file, users.entry(DEMO_USER, DEMO_ROLE, pw))
        _write_private(login_file, f"user: {DEMO_USER}\npassword: {pw}\n")
    return users_file, login_file


class RigDashboard:
    """start() -> the dashboard's address; stop() ends it."""

    def __init__(self, db: str | Path, folder: Path) -> None:
        self.db = str(db)
        self.folder = folder
        self.p = None
        self.url = None
        self.login_file = None
        self.lines = queue.Queue()

    def _spawn(self, users_file: Path, listen: str) -> tuple[subprocess.Popen | None, str | None]:
        log = open(self.folder / "dashboard.log", "a")
        try:
            p = subprocess.Popen([sys.executable, "-m", "samband.cli", "dashboard", "--db", self.db,
                                  "--users", str(users_file), "--listen", listen],
                                 stdout=subprocess.PIPE, stderr=log, text=True)
        finally:
            log.close()
        lines = queue.Queue()
        # drained for the process's whole life: a full pipe would block its last words
        threading.Thread(target=lambda: [lines.put(x) for x in iter(p.stdout.readline, "")] + [lines.put("")],
                         daemon=True).start()
        try:
            first = lines.get(timeout=START_S)
        except queue.Empty:
            first = ""
        if first.startswith("samband dashboard: http://"):
            return p, first.split()[2]
        self._end(p)
        return None, None

    def start(self) -> str:
        users_file, self.login_file = demo_login(self.folder)
        for listen in LISTEN:
            self.p, self.url = self._spawn(users_file, listen)
            if self.p is not None:
                return self.url
        raise SambandError(f"the dashboard did not start: see {self.folder / 'dashboard.log'}")

    @staticmethod
    def _end(p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self) -> None:
        if self.p is not None:
            self._end(self.p)
            self.p = None
