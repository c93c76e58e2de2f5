"""Stage 2, store: the embedded DuckDB file (event log, labels, quarantine, references, runs,
alerts, outbox), reference registration, training-data export and retention."""
