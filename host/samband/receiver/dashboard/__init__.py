"""The clinician dashboard (issue 15, items 4 and 5): a Flask application
served by waitress that shows what the receiver stored, to nurses, doctors
and technicians (docs/dashboard.md).

Modules: `agp` and `ecg` are the pure maths (glucose profile and statistics,
ECG strip scaling), unit-tested against hand-computed values; `svg` draws
them; `data` holds the read queries (the receiver's store is not edited for
the dashboard); `users` the users file and password hashes; `app` the routes,
login, roles and the one write, acknowledging an alert.
"""
