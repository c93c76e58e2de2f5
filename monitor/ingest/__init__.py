"""Stage 1, ingest: Kafka (or a replayed file) -> validated, column-shaped event batches."""
