"""driftd daemon core: config, ingest, store, scheduler, alerting, HTTP and CLI."""

__version__ = "0.1.0"
