"""Pure drift computations: reference profile + current window in, frozen results out.

Nothing here imports the daemon (`monitor/`), Kafka, DuckDB, a clock or a sink.
"""
