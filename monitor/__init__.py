"""driftd daemon core, by stage: ingest -> store -> service (scheduler, alerting, HTTP), the CLI
and the demo."""
