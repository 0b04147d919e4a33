"""Logs, metrics and request statistics: everything that watches the app, nothing it runs on.

May import `app.core`; `app.main`, `app.api` and `app.services` may import it. `core/` never
imports it (the layers only point down).
"""
