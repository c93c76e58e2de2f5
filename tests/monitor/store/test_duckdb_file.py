import json
from datetime import datetime

import pytest

from driftd.monitor.config import parse_config
from driftd.monitor.ingest.decode import Decoder, RawMessage
from driftd.monitor.store.duckdb_file import Store

CONFIG = parse_config("""
models:
  m:
    reference: r.parquet
    features: {"age": numeric, "we\\"ird name": categorical}
""", env={}, check_files=False)
NOW = datetime(2026, 11, 22, 8, 0)


def _age(event_id: str) -> int:
    """An id's payload is the same wherever it is sent (another one would be a conflict)."""
    return 30 + sum(map(ord, event_id)) % 50


def _events(ids, **over):
    msgs = []
    for i, eid in enumerate(ids):
        e = {"event_id": eid, "model": "m", "timestamp": "2026-11-22T07:00:00Z",
             "features": {"age": _age(eid), 'we"ird name': "x"}, "prediction": 0.5}
        e.update(over)
        msgs.append(RawMessage(json.dumps(e).encode(), "kafka", "events", 0, i))
    return Decoder(CONFIG, now=NOW).decode_events(msgs)


def test_replayed_events_are_stored_once(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    first = store.write_batch(_events(["a", "b", "c"]))
    again = store.write_batch(_events(["b", "c", "d"]))
    assert first.inserted == {"m": 3}
    assert again.inserted == {"m": 1}
    assert again.duplicates == 2
    assert store.event_count("m") == 4


def test_quoted_feature_names_round_trip(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    store.write_batch(_events(["a"]))
    window = store.load_window("m", CONFIG.models["m"].features, datetime(2026, 11, 22),
                               datetime(2026, 11, 23))
    assert window.frame['we"ird name'].to_list() == ["x"]
    assert window.frame["age"].to_list() == [float(_age("a"))]


def test_offsets_written_with_rows(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    store.write_batch(_events(["a"]), offsets={("events", 0): 5}, group_id="g")
    store.write_batch(_events(["b"]), offsets={("events", 0): 3}, group_id="g")
    # the latest batch's position wins (a recreated topic restarts its offsets; a lower
    # value only costs an idempotent re-read)
    assert store.stored_offsets("g") == {("events", 0): 3}


def test_late_label_last_write_wins(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    store.write_batch(_events(["a", "b"]))
    dec = Decoder(CONFIG, now=NOW)

    def labels(pairs):
        return dec.decode_labels([
            RawMessage(json.dumps({"event_id": e, "model": "m", "label": v}).encode(), "kafka")
            for e, v in pairs])

    store.write_batch(labels([("a", 0), ("a", 1)]))
    store.write_batch(labels([("b", 1), ("zz", 1)]))  # zz: pending, no event yet
    store.write_batch(labels([("b", 0)]))
    got = dict(store.con.execute("SELECT event_id, label FROM labels").fetchall())
    assert got == {"a": 1.0, "b": 0.0, "zz": 1.0}
    updates = dict(store.con.execute("SELECT event_id, updates FROM labels").fetchall())
    assert updates["b"] == 2
    window = store.load_window("m", CONFIG.models["m"].features, datetime(2026, 11, 22),
                               datetime(2026, 11, 23))
    assert sorted(window.label.to_list()) == [0.0, 1.0]


def test_window_bounds_are_half_open(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    store.write_batch(_events(["a"], timestamp="2026-11-22T07:00:00Z"))
    store.write_batch(_events(["b"], timestamp="2026-11-22T08:00:00Z"))
    feats = CONFIG.models["m"].features
    w = store.load_window("m", feats, datetime(2026, 11, 22, 7), datetime(2026, 11, 22, 8))
    assert w.frame.height == 1


def test_quarantine_rows_persist_raw_bytes(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    batch = Decoder(CONFIG, now=NOW).decode_events([RawMessage(b"\xffbad", "kafka", "events",
                                                               2, 9)])
    store.write_batch(batch)
    (row,) = store.quarantine_rows()
    assert (row["topic"], row["partition"], row["offset"]) == ("events", 2, 9)
    assert bytes(row["raw"]) == b"\xffbad"
    assert row["reason_code"] == "invalid_json"


def test_duckdb_limits_from_the_config(tmp_path):
    from driftd.monitor.config import ConfigError, load_config
    from driftd.monitor.store.duckdb_file import open_store

    path = tmp_path / "c.yaml"
    body = "models: {m: {reference: r.parquet, features: {a: numeric}}}\n"
    (tmp_path / "r.parquet").write_bytes(b"")
    path.write_text(f"store: {{path: s.duckdb, memory_limit: 1GiB, threads: 1}}\n{body}")
    store = open_store(load_config(path))
    try:
        limit, threads, wal = store.con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('checkpoint_threshold')").fetchone()
        assert limit in ("1.0 GiB", "1024.0 MiB") and threads == 1
        assert wal == "122.0 MiB"  # the default, 128MB (DuckDB's own is 16MB)
    finally:
        store.close()
    path.write_text(f"store: {{path: s.duckdb, checkpoint_threshold: 16MB}}\n{body}")
    store = open_store(load_config(path))
    try:
        assert store.con.execute(
            "SELECT current_setting('checkpoint_threshold')").fetchone()[0] == "15.2 MiB"
    finally:
        store.close()
    path.write_text(f"store: {{path: s.duckdb, memory_limit: lots}}\n{body}")
    with pytest.raises(ConfigError, match="store.memory_limit"):
        load_config(path)


def test_one_duckdb_thread_outside_bulk_work(tmp_path):
    """Appends run on one DuckDB thread; `parallel()` lends the configured threads to a bulk
    read or export, shared by nested and concurrent users, and takes them back after."""
    import threading

    store = Store(tmp_path / "s.duckdb", threads=3)

    def threads() -> int:
        return store.con.execute("SELECT current_setting('threads')").fetchone()[0]

    try:
        assert threads() == 1
        entered, release = threading.Event(), threading.Event()

        def other():
            with store.parallel():
                entered.set()
                release.wait(10)

        worker = threading.Thread(target=other)
        worker.start()
        assert entered.wait(10)
        with store.parallel():
            assert threads() == 3
            with store.parallel():
                assert threads() == 3
            assert threads() == 3  # the inner exit does not end the outer use
        assert threads() == 3  # the other thread still holds them
        release.set()
        worker.join(10)
        assert threads() == 1
        with pytest.raises(RuntimeError), store.parallel():
            raise RuntimeError("a failed export")
        assert threads() == 1
    finally:
        store.close()
    default = Store(tmp_path / "d.duckdb")  # DuckDB's own count (every core) when unset
    try:
        import duckdb

        own = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
        with default.parallel():
            assert default.con.execute("SELECT current_setting('threads')").fetchone()[0] == own
    finally:
        default.close()


def test_window_loads_and_exports_run_in_parallel(tmp_path, monkeypatch):
    from driftd.monitor.store.export import export_training_data

    store = Store(tmp_path / "s.duckdb", threads=2)
    store.write_batch(_events(["a", "b"]))
    seen = []
    real = store.ensure_model_table  # the first thing both do, inside the parallel section

    def spy(*args):
        seen.append(store.con.execute("SELECT current_setting('threads')").fetchone()[0])
        return real(*args)

    monkeypatch.setattr(store, "ensure_model_table", spy)
    try:
        window = store.load_window("m", CONFIG.models["m"].features, datetime(2026, 11, 22),
                                   datetime(2026, 11, 23))
        assert window.frame.height == 2 and seen == [2]
        export_training_data(store, "m", CONFIG.models["m"], tmp_path / "out")
        assert seen == [2, 2]
        assert store.con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    finally:
        store.close()
