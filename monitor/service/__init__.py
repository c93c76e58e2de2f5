"""Stage 3, the running service: scheduler and windows, detector runs, alerting, the outbox,
reports, backfill and the HTTP server; `app.build(config)` wires them."""
