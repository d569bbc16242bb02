"""fume_edge.alerts: from predictions to alerts that are never lost.

- `policy.AlertPolicy`: pure state machine, predictions and camera health in, `event.AlertEvent`s out.
- `worker.SinkWorker`: the sink thread: SQLite (`store`) first, then JSONL (`jsonl`), snapshots (`snapshot`);
  MQTT (`mqtt`) publishes from the SQLite outbox on its own thread.
- `service.AlertService`: the two together, the one object the capture loop drives.
- `report`: the `fume-edge alerts` command.

Nothing is imported here, so `fume-edge alerts` does not pay for OpenCV or paho.
"""
