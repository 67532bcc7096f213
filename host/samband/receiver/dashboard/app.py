"""The dashboard's routes: login, roles, pages, live fragments and acknowledging.

Flask keeps the session in a cookie signed with the app's secret key
(itsdangerous), HttpOnly and SameSite=Strict; a form that changes something
(acknowledge, log out) also carries the session's CSRF token. Roles:
nurse and doctor see everything and may acknowledge; a technician sees hubs,
devices and technical alerts, never a clinical value (the device pages and
clinical alerts answer 403). A refused request is counted, never silent.

Live views: a page with `data-live` fetches its own URL with `?fragment=1`
every second and replaces the part that changed, so what is stored shows
within 2 s (docs/dashboard.md).
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, abort, g, redirect, render_template, request, session, url_for

from samband.receiver.dashboard import agp, data, svg, users, views

POLL_MS = 1000
SESSION_S = 12 * 3600  # a login lasts one shift at most, whatever the browser keeps
log = logging.getLogger("samband.dashboard")


def create_app(db_url: str | Path, user_table: dict[str, dict[str, str]], secret_key: bytes | None = None,
               offline_s: float = 300.0, now: Callable[[], float] = time.time, glucose_unit: str = "mg/dL",
               session_s: float = SESSION_S, patients: dict[str, str] | None = None) -> Flask:
    """The WSGI application over the database at db_url (read-only but for acks).
    glucose_unit: how glucose levels are shown (the maths is in mg/dL either way).
    patients: {hub hex: patient}, the alerts rules' [patients], shown with hubs and devices."""
    patients = dict(patients or {})
    agp.shown(100, glucose_unit)  # an unknown unit fails here, not on the first page
    app = Flask(__name__)
    app.add_template_filter(lambda v, mean=False: agp.shown(v, glucose_unit, mean), "glu")
    app.secret_key = secret_key or secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.config["samband"] = {"db": str(db_url), "users": user_table, "offline_s": offline_s, "now": now}
    counters = app.config["counters"] = {"login_failed": 0, "forbidden": 0, "acked": 0, "ack_refused": 0,
                                         "session_expired": 0, "bad_request": 0}

    def reader():
        if "db" not in g:
            g.db = data.Reader(db_url)
        return g.db

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            db.close()

    def need(*roles):
        def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(f)
            def inner(*a, **k):
                user = session.get("user")
                if user and not 0 <= now() - session.get("since", 0) <= session_s:
                    counters["session_expired"] += 1
                    session.clear()
                    user = None
                if not user or user not in user_table:
                    return redirect(url_for("login", next=request.full_path))
                g.user, g.role = user, user_table[user]["role"]
                if roles and g.role not in roles:
                    counters["forbidden"] += 1
                    log.warning("refused %s %s to %s (%s) from %s", request.method, request.path, user, g.role,
                                request.remote_addr)
                    abort(403)
                return f(*a, **k)
            return inner
        return wrap

    def check_csrf() -> None:
        token = request.form.get("csrf", "")
        if not token or not hmac.compare_digest(token, session.get("csrf", "")):
            counters["forbidden"] += 1
            log.warning("refused %s %s: no or a wrong CSRF token (from %s)", request.method, request.path,
                        request.remote_addr)
            abort(403)

    @app.context_processor
    def _common():
        return {"user": getattr(g, "user", None), "role": getattr(g, "role", None),
                "csrf": session.get("csrf", ""), "poll_ms": POLL_MS,
                "clinical": getattr(g, "role", None) in users.CLINICAL, "live_url": live_url(),
                "gunit": glucose_unit, "patients": patients}

    def live_url():
        """This page's own fragment, for the live poll (pages that change while watched)."""
        if request.endpoint not in ("hubs", "alerts", "device") or not getattr(g, "user", None):
            return None
        args = {k: v for k, v in request.args.items() if k not in ("msg", "fragment")}
        return url_for(request.endpoint, fragment=1, **args)

    def page(template: str, **kw: Any) -> str:
        if request.args.get("fragment"):
            return render_template(template, fragment=True, **kw)
        return render_template(template, fragment=False, **kw)

    @app.route("/login", methods=["GET", "POST"])
    def login():
        error = None
        if request.method == "POST":
            name, pw = request.form.get("name", ""), request.form.get("password", "")
            u = user_table.get(name)
            if u and users.check_password(pw, u["password"]):
                session.clear()
                session["user"] = name
                session["since"] = now()
                session["csrf"] = secrets.token_urlsafe(24)
                log.info("%s (%s) logged in from %s", name, u["role"], request.remote_addr)
                nxt = request.args.get("next", "")
                return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else url_for("hubs"))
            counters["login_failed"] += 1
            log.warning("failed login as %r from %s", name[:64], request.remote_addr)
            error = "wrong name or password"
        return render_template("login.html", error=error), (401 if error else 200)

    @app.post("/logout")
    @need()
    def logout():
        check_csrf()
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    @need()
    def index():
        return redirect(url_for("hubs"))

    @app.get("/hubs")
    @need()
    def hubs():
        return page("hubs.html", hubs=views.hubs_page(reader(), now(), offline_s))

    @app.get("/alerts")
    @need()
    def alerts():
        clinical = g.role in users.CLINICAL
        return page("alerts.html", alerts=views.alert_rows(reader(), clinical, now()),
                    message=request.args.get("msg"))

    @app.post("/alerts/<int:alert_id>/ack")
    @need(*users.CLINICAL)
    def ack(alert_id: int) -> Any:
        check_csrf()
        from samband.receiver.alerts_db import AlertError
        from samband.receiver.alerts_db import ack as do_ack
        from samband.receiver.store import open_store
        store = open_store(db_url, create=False)
        try:
            do_ack(store, alert_id, g.user)
            counters["acked"] += 1
            log.info("alert %d acknowledged by %s", alert_id, g.user)
            msg = f"alert {alert_id} acknowledged by {g.user}"
            code = 200
        except AlertError as e:
            counters["ack_refused"] += 1
            msg, code = str(e), 409
        finally:
            store.close()
        if request.headers.get("Accept", "").startswith("application/json"):
            return {"message": msg}, code
        return redirect(url_for("alerts", msg=msg), code=303)

    @app.get("/device")
    @need(*users.CLINICAL)
    def device():
        hub, dev = request.args.get("hub", ""), request.args.get("dev", "")
        db = reader()
        if not db.rows("SELECT 1 FROM readings WHERE hub = ? AND device = ? LIMIT 1", (hub, dev)):
            abort(404)
        glu = views.glucose(db, hub, dev)
        e = views.ecg_view(db, hub, dev)
        tr = views.trends(db, hub, dev)
        return page("device.html", hub=hub, dev=dev, glucose=glu, ecg=e, trends=tr,
                    recent=views.recent(db, hub, dev),
                    agp_svg=svg.agp(glu["profile"], glucose_unit) if glu else None,
                    ecg_svg=svg.ecg_strip(e["samples"], views.ECG_SECONDS) if e else None,
                    trend_svgs=[svg.trend(t["series"]) for t in tr])

    @app.get("/api/patient")
    @need(*users.CLINICAL)
    def patient_api():
        """Read-only JSON for acute staff: ?patient=SYSTEM|VALUE[&hours=24] (receiver/live.py)."""
        from samband.receiver import live
        from samband.receiver import patients as patients_mod
        try:
            hours = float(request.args.get("hours", "24"))
            if not 0 < hours <= 24 * 31:
                raise ValueError
        except ValueError:
            counters["bad_request"] += 1
            return {"error": "hours: want a number of hours from 0 to 744"}, 400
        try:
            answer = live.snapshot(reader(), request.args.get("patient", ""), int(now() * 1000), hours)
        except patients_mod.PatientError as e:
            counters["bad_request"] += 1
            return {"error": str(e)}, (404 if isinstance(e, patients_mod.UnknownPatient) else 400)
        log.info("patient %s read by %s (%s)", answer["patient"]["ref"], g.user, g.role)  # the ref, not the id
        return answer

    @app.errorhandler(403)
    def forbidden(e: Exception) -> tuple[str, int]:
        return render_template("error.html", code=403, text="Your role may not see or do this."), 403

    @app.errorhandler(404)
    def missing(e: Exception) -> tuple[str, int]:
        return render_template("error.html", code=404, text="Nothing stored here."), 404

    return app
