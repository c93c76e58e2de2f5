"""The retrain contract end to end: drifting traffic → retrain.requested → the Airflow preset
starts a DAG run whose conf lets the pipeline fetch and verify exactly the exported data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import polars as pl

from driftd.monitor.config import load_config
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from driftd.sinks.alert_samples import sample_alert
from tests.monitor.conftest import write_config, write_events
from tests.sinks.fake_apis import FakeAirflow

PRESET = Path(__file__).resolve().parents[3] / "examples" / "webhooks" / "airflow.yaml"


def _path(uri: str) -> Path:
    parts = urlsplit(uri)
    assert parts.scheme == "file", uri
    return Path(url2pathname(parts.path))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shape(value: Any) -> Any:
    """Keys (recursively) without values: what a template may rely on."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_a_pipeline_can_fetch_and_verify_the_announced_export(tmp_path) -> None:
    with FakeAirflow({"retrain_model"}, username="driftd", password="pw") as airflow, \
            WebhookReceiver() as hook:
        sinks = f'hook: {{type: webhook, url: "{hook.url}"}}'
        path = write_config(tmp_path, sinks=sinks, alert_sinks="[hook, airflow]",
                            alert_extra=", critical_share: 0.1, "
                                        "retrain: {after_consecutive_critical: 1}")
        text = path.read_text()
        preset = PRESET.read_text().split("sinks:\n", 1)[1]
        path.write_text(text.replace(f"sinks: {{{sinks}}}\n", f"sinks:\n  {sinks}\n{preset}"))
        loaded = load_config(path, env={"AIRFLOW_URL": airflow.base_url,
                                        "AIRFLOW_USERNAME": "driftd", "AIRFLOW_PASSWORD": "pw"})
        app = build(loaded)
        replay_file(write_events(tmp_path / "ev.jsonl", 1500, seed=5, drifted=True), "events",
                    app.decoder, app.store, app.metrics)
        assert app.run_once(deliver_seconds=20) == 0

        (run,) = airflow.runs
        conf = run["conf"]
        bodies = {r["event"]: r["body"] for r in hook.received}
        retrain = bodies["retrain.requested"]
        assert conf["training_data"] == retrain["training_data"]

        # what a DAG does with it: fetch the manifest, check it is the one announced, then
        # check every file it lists against its sha256, and the row count
        data = conf["training_data"]
        manifest_file = _path(data["manifest"])
        assert _sha256(manifest_file) == data["manifest_sha256"]
        manifest = json.loads(manifest_file.read_text())
        assert manifest["content_sha256"] == data["sha256"]
        export_dir = _path(data["uri"])
        assert manifest_file.parent == export_dir
        for entry in manifest["files"]:
            assert _sha256(export_dir / entry["path"]) == entry["sha256"]
        frame = pl.read_parquet([export_dir / f["path"] for f in manifest["files"]])
        assert frame.height == data["rows"] == manifest["rows"] == 1500
        assert data["time_range"] == {"start": manifest["time_range"]["start"],
                                      "end": manifest["time_range"]["end"]}

        # the reference it replaces, and why
        reference = app.store.reference("credit-risk")
        assert data["replaces"] == {
            "version": str(reference.version), "sha256": reference.sha256,
            "rows": reference.rows, "uri": (tmp_path / "reference.parquet").as_uri(),
            "model_version": None, "source": "config"}
        # the alert's reference adds why that reference was used
        assert conf["replaces_reference"] == retrain["reference"] == {
            **data["replaces"], "choice": retrain["reference"]["choice"]}
        assert retrain["reference"]["choice"].startswith("the model's default reference: "
                                                         f"reference {reference.version} ")
        assert _sha256(_path(data["replaces"]["uri"])) == reference.sha256
        drifted = [f["feature"] for f in retrain["findings"]  # the multivariate finding is no
                   if f["drifted"] and f["method"] != "pca_reconstruction"]  # feature's
        assert conf["drifted_features"] == list(dict.fromkeys(drifted)) and "income" in drifted

        # the samples templates are checked against have exactly the real bodies' keys
        for event, body in bodies.items():
            assert _shape(body) == _shape(sample_alert(event)), event
