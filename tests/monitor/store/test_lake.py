"""The shared lake on a real PostgreSQL catalog and a data directory: what the DuckDB file
guarantees (stored once, latest label, offsets with the rows) holds for several writers."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from driftd.monitor.ingest.decode import Decoder, RawMessage
from driftd.monitor.store.coordination import Fenced
from driftd.monitor.store.health import CACHE_SECONDS
from driftd.monitor.store.lake import LakeStore
from tests.monitor.store.test_duckdb_file import CONFIG, NOW, _events

FEATURES = CONFIG.models["m"].features
DAY = (datetime(2026, 11, 22), datetime(2026, 11, 23))


@pytest.fixture
def store(lake):
    s = LakeStore(lake, replica="r1")
    yield s
    s.close()


@pytest.fixture
def other(lake):
    """A second replica on the same lake."""
    s = LakeStore(lake, replica="r2")
    yield s
    s.close()


def _labels(pairs):
    return Decoder(CONFIG, now=NOW).decode_labels([
        RawMessage(json.dumps({"event_id": e, "model": "m", "label": v}).encode(), "kafka")
        for e, v in pairs])


def _log_count(store, model="m"):
    return store.con.execute(f'SELECT count(*) FROM "events_log:{model}"').fetchone()[0]


def test_replayed_events_are_stored_once(store):
    first = store.write_batch(_events(["a", "b", "c"]))
    again = store.write_batch(_events(["b", "c", "d"]))
    assert first.inserted == {"m": 3}
    assert (again.inserted, again.duplicates) == ({"m": 1}, 2)
    assert store.event_count("m") == 4
    assert _log_count(store) == 4  # kept out of the log, not only out of reads


def test_an_id_repeated_in_one_batch_is_stored_once(store):
    result = store.write_batch(_events(["a", "a", "b"]))
    assert result.inserted == {"m": 2}
    assert store.event_count("m") == 2


def test_the_same_event_written_by_two_replicas_at_once_is_read_once(store, other):
    """A producer sent the same events twice, to two partitions owned by two replicas: both
    append (DuckLake has no unique key), and every read sees each event once."""
    ids = [f"e{i}" for i in range(200)]
    store.ensure_model_table("m", FEATURES)
    other.ensure_model_table("m", FEATURES)
    barrier = threading.Barrier(2)
    errors = []

    def write(s):
        try:
            con = s.con
            barrier.wait()
            con.execute("BEGIN TRANSACTION")
            s._insert_events(con, "m", FEATURES, s._arrow(_events(ids).events["m"]), NOW,
                             False)
            barrier.wait()  # both have checked for stored ids before either commits
            con.execute("COMMIT")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in (store, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert _log_count(store) == 400  # both appends landed
    assert store.event_count("m") == 200
    window = store.load_window("m", FEATURES, *DAY)
    assert window.frame.height == 200
    from driftd.monitor.store.export import export_training_data

    manifest = export_training_data(store, "m", CONFIG.models["m"], store_dir(store) / "x")
    assert manifest["rows"] == 200


def store_dir(store):
    from pathlib import Path

    return Path(store.lake.data_path).parent


def test_latest_label_wins_and_updates_are_counted(store, other):
    store.write_batch(_events(["a", "b"]))
    store.write_batch(_labels([("a", 0), ("a", 1)]))
    other.write_batch(_labels([("b", 1), ("zz", 1)]))
    store.write_batch(_labels([("b", 0)]))
    got = dict(store.con.execute("SELECT event_id, label FROM labels").fetchall())
    assert got == {"a": 1.0, "b": 0.0, "zz": 1.0}
    updates = dict(other.con.execute("SELECT event_id, updates FROM labels").fetchall())
    assert updates == {"a": 1, "b": 2, "zz": 1}
    window = other.load_window("m", FEATURES, *DAY)
    assert sorted(window.label.to_list()) == [0.0, 1.0]


def test_offsets_are_stored_with_the_rows_and_read_back(store, other):
    store.write_batch(_events(["a"]), offsets={("events", 0): 5, ("labels", 1): 2},
                      group_id="g", expected={("events", 0): None, ("labels", 1): None},
                      topic_ids={"events": "T1"})
    assert other.stored_offsets("g") == {("events", 0): 5, ("labels", 1): 2}
    assert other.stored_topic_ids("g") == {("events", 0): "T1"}
    store.write_batch(_events(["b"]), offsets={("events", 0): 9}, group_id="g",
                      expected={("events", 0): 5})
    assert other.stored_offsets("g")[("events", 0)] == 9
    assert other.stored_offsets("another") == {}


def test_a_writer_behind_the_stored_offset_is_fenced_and_writes_nothing(store, other):
    """Replica 1 lost partition 0 in a rebalance; replica 2 took it over and stored a batch.
    Replica 1's next batch (started from the old offset) is rolled back whole."""
    store.write_batch(_events(["a"]), offsets={("events", 0): 5}, group_id="g",
                      expected={("events", 0): None})
    other.write_batch(_events(["b"]), offsets={("events", 0): 8}, group_id="g",
                      expected={("events", 0): 5})
    with pytest.raises(Fenced, match=r"events\[0\]"):
        store.write_batch(_events(["c"]), offsets={("events", 0): 8, ("events", 1): 3},
                          group_id="g", expected={("events", 0): 5, ("events", 1): None})
    assert store.event_count("m") == 2  # "c" rolled back with its offsets
    assert store.stored_offsets("g") == {("events", 0): 8}
    with pytest.raises(Fenced, match="another writer stored an offset first"):
        other.write_batch(_events(["d"]), offsets={("events", 0): 9}, group_id="g",
                          expected={("events", 0): None})


def test_two_writers_of_one_partition_at_once_commit_once(store, other):
    """Both start from the same stored offset and commit together: DuckLake's conflict check
    on the partition's offsets table lets exactly one through."""
    store.write_batch(_events(["seed"]), offsets={("events", 0): 100}, group_id="g",
                      expected={("events", 0): None})
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def write(name, s, ids):
        try:
            barrier.wait()
            s.write_batch(_events(ids), offsets={("events", 0): 200}, group_id="g",
                          expected={("events", 0): 100})
            outcomes[name] = "ok"
        except (Fenced, duckdb.TransactionException) as exc:
            outcomes[name] = exc

    ids = [f"x{i}" for i in range(50)]
    threads = [threading.Thread(target=write, args=(n, s, ids))
               for n, s in (("r1", store), ("r2", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(str(type(v).__name__) for v in outcomes.values()).count("str") == 1, outcomes
    assert _log_count(store) == 51  # one batch of 50 (and the seed), never two
    assert store.stored_offsets("g") == {("events", 0): 200}


def test_quarantine_is_shared_and_deduplicated(store, other):
    batch = Decoder(CONFIG, now=NOW).decode_events(
        [RawMessage(b"\xffbad", "kafka", "events", 2, 9)])
    first = store.write_batch(batch)
    again = other.write_batch(batch)
    assert (first.quarantined, again.quarantined) == (1, 0)
    (row,) = other.quarantine_rows()
    assert (row["topic"], row["partition"], row["offset"]) == ("events", 2, 9)
    assert bytes(row["raw"]) == b"\xffbad"
    assert first.quarantine_codes == (("", "invalid_json"),)


def test_references_registered_by_replicas_together_get_one_version(store, other):
    results = []

    def add(s):
        results.append(s.add_reference("m", "abc", "/r.parquet", 10, {"a": "f64"}, b"p"))

    threads = [threading.Thread(target=add, args=(s,)) for s in (store, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(created for _, created in results) == [False, True]
    assert store.con.execute('SELECT count(*) FROM "references"').fetchone()[0] == 1
    record, created = other.add_reference("m", "def", "/r.parquet", 11, {}, b"q")
    assert (record.version, created) == (2, True)


def test_a_model_versions_reference_and_segment_rows_are_shared(store, other):
    """What the file store records of a reference's model version and a run's segments, the
    lake records too, and another replica reads it (its overrides pass every argument on)."""
    record, _ = store.add_reference("m", "v2sha", "/v2.parquet", 10, {}, b"p",
                                    model_version="v2", source="manual")
    seen = other.reference("m", model_version="v2")
    assert (seen.version, seen.sha256) == (record.version, "v2sha")
    assert other.reference("m") is None  # the default slot stays empty
    store.set_reference_segments("m", record.version, b"seg")
    assert bytes(other.reference_segments("m", record.version)) == b"seg"
    run = {"run_id": "r-s", "model": "m", "status": "ok", "drift": False,
           "window_start": DAY[0], "window_end": DAY[1], "rows": 5, "model_versions": "[]",
           "config_fingerprint": "f", "thresholds": "{}", "trigger": "aligned",
           "started_at": NOW, "duration_seconds": 0.1}
    store.save_run(run, [], segments=[("region=APAC", "segment", None, None, 0.5, None, None,
                                       None, True, "drift", None, 40, 60)])
    assert other.con.execute(
        "SELECT segment, drifted FROM segment_findings WHERE run_id = 'r-s'").fetchall() == [
        ("region=APAC", True)]


def test_runs_supersede_across_replicas(store, other):
    base = {"model": "m", "status": "ok", "drift": False, "window_start": DAY[0],
            "window_end": DAY[1], "rows": 5, "model_versions": "[]",
            "config_fingerprint": "f", "thresholds": "{}", "trigger": "aligned",
            "started_at": NOW, "duration_seconds": 0.1}
    store.save_run({**base, "run_id": "r-1"}, [("age", "numeric", "ks", 0.1, 0.5, 0.05,
                                                 False, "ok", None)])
    other.save_run({**base, "run_id": "r-2"}, [], replaces=["r-1"])
    assert [r["run_id"] for r in store.runs("m")] == ["r-2"]
    assert store.run("r-1")["superseded_by"] == "r-2"
    assert store.run("r-2")["replica"] == "r2"
    assert store.last_evaluated_end("m") == DAY[1]


def test_maintenance_applies_retention_and_compacts_small_files(store, lake):
    from driftd.monitor.config import parse_config

    config = parse_config(f"""
store: {{lake: {{catalog: "{lake.catalog}", data_path: "{lake.data_path}"}},
        retention_days: 1}}
models:
  m:
    reference: r.parquet
    features: {{"age": numeric, "we\\"ird name": categorical}}
""", env={}, check_files=False)
    old = _events(["old"], timestamp="2026-11-01T00:00:00Z")
    store.write_batch(old)
    for i in range(6):  # one small data file per transaction
        store.write_batch(_events([f"n{i}-{j}" for j in range(20)]))
    files_before, _ = store.data_files()
    stats = store.maintain(config, NOW + timedelta(hours=1))
    assert stats.events == 1
    assert store.event_count("m") == 120
    assert stats.files_after < files_before
    assert store.data_files()[0] == stats.files_after


def test_readiness_reports_catalog_and_data_path_without_writing(store, lake, tmp_path):
    data = Path(lake.data_path)
    files = sorted(data.rglob("*"))
    assert store.readiness_checks() == {"store": "ok", "catalog": "ok", "data_path": "ok"}
    assert sorted(data.rglob("*")) == files  # the probe wrote nothing
    data.rename(tmp_path / "moved")  # the mount is gone, something else in its place
    data.write_text("x")
    time.sleep(CACHE_SECONDS)
    checks = store.readiness_checks()
    assert checks["data_path"] == f"not writable: {data} is not a directory"
    assert (checks["store"], checks["catalog"]) == ("ok", "ok")
    from driftd.monitor.store.lake import probe_data_path

    # validate-config's check does write a probe file
    assert probe_data_path(duckdb.connect(), str(data), "r1").startswith("not writable")
