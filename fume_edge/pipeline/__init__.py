"""The capture loop behind `fume-edge run`: two gas cameras, paired frames, fused inference, alerts.

sources.py / synthetic_source.py (what --co2/--ch4 name) -> capture.py (a thread and a bounded ring per camera) ->
sync.py (timestamp pairing, camera health) -> prepare.py (model inputs) -> loop.py (inference, alerts) ->
status.py / view.py (what the user sees); run.py wires them from config.py (run.yaml) and shutdown.py (signals).
"""
