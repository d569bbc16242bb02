"""The device's web side: a phone page, a read-only JSON API, Prometheus /metrics and /healthz.

It runs beside the capture loop, never in its way: its own thread and event loop, reading the loop's latest
state (published by `LiveFeeds`) and the SQLite alert store. Needs the `web` extra (Starlette, uvicorn,
prometheus-client); importing this package alone imports none of them.
"""
