"""The capture loop behind `fume-edge run`: one or more stations of two gas cameras, paired frames, one batched
inference per tick, alerts per station.

sources.py / synthetic_source.py (what --co2/--ch4 and `stations:` name) -> capture.py (a thread and a bounded ring
per camera) -> sync.py (timestamp pairing, camera health) -> station.py (one camera pair's state) -> prepare.py
(model inputs, straight into the batch) -> loop.py (one batched inference per tick, alerts) -> published.py (the
snapshot other threads read) -> status.py / view.py (what the user sees); run.py wires them from config.py and
stations_config.py (run.yaml) and shutdown.py (signals).
"""
