"""A registered reference is never silently replaced: `driftd reference add` wins over the
config's unchanged file across restarts; a changed config file is registered and used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from driftd.monitor.cli import main
from driftd.monitor.demo.simulate import sample
from tests.monitor.conftest import write_config, write_events


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _restart_and_run(config: Path) -> dict:
    """A daemon start (`run --once`: registers the config's references, scores the window)
    in a fresh App; the run it stored."""
    from driftd.monitor.config import load_config
    from driftd.monitor.service.app import build

    assert main(["run", "--config", str(config), "--once"]) == 0
    app = build(load_config(config))
    try:
        return app.store.run()
    finally:
        app.store.close()


def test_reference_add_survives_a_restart_until_the_configs_file_changes(tmp_path, capsys):
    config = write_config(tmp_path)
    events = write_events(tmp_path / "events.jsonl", 800, seed=4, drifted=False)
    assert main(["replay", "--config", str(config), "--file", str(events)]) == 0
    first = _restart_and_run(config)
    assert (first["reference_version"], first["reference_source"]) == (1, "config")

    added = tmp_path / "retrained.parquet"
    sample(4000, np.random.default_rng(9)).write_parquet(added)
    capsys.readouterr()
    assert main(["reference", "add", "--config", str(config), "--model", "credit-risk",
                 "--file", str(added)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["version"], out["status"], out["source"]) == (2, "registered", "manual")

    # a restart with the config's file unchanged keeps the added reference, and says why
    run = _restart_and_run(config)
    assert run["reference_version"] == 2
    assert run["reference_sha256"] == _sha256(added)
    assert run["reference_source"] == "manual"
    assert "registered from `driftd reference add`" in run["reference_choice"]
    assert run["reference_choice"].startswith("the model's default reference: reference 2 ")

    # the config's file changes: it is registered, and it is the one used from then on
    sample(5000, np.random.default_rng(21)).write_parquet(tmp_path / "reference.parquet")
    run = _restart_and_run(config)
    assert run["reference_version"] == 3
    assert run["reference_sha256"] == _sha256(tmp_path / "reference.parquet")
    assert run["reference_source"] == "config"
    assert "registered from the config's file" in run["reference_choice"]


def test_a_version_reference_added_by_hand_wins_over_the_configs_for_that_version(
        tmp_path, capsys):
    sample(3000, np.random.default_rng(2), drifted=True).write_parquet(tmp_path / "v2.parquet")
    config = write_config(tmp_path, extra_model="    references: {v2: v2.parquet}\n")
    from driftd.monitor.config import load_config
    from driftd.monitor.service.app import build
    from driftd.monitor.store.model_versions import versioned_references

    app = build(load_config(config))
    app.register_references()
    assert versioned_references(app.store, "credit-risk")["v2"].source == "config"
    app.store.close()

    hand = tmp_path / "v2-hand.parquet"
    sample(3000, np.random.default_rng(5), drifted=True).write_parquet(hand)
    assert main(["reference", "add", "--config", str(config), "--model", "credit-risk",
                 "--file", str(hand), "--version", "v2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["model_version"], out["source"]) == ("v2", "manual")

    app = build(load_config(config))
    app.register_references()  # a restart: the config's v2 file is unchanged
    try:
        own = versioned_references(app.store, "credit-risk")
        assert own["v2"].sha256 == _sha256(hand) and own["v2"].source == "manual"
        # the model's default reference is another slot: untouched by either
        default = app.store.reference("credit-risk")
        assert default.sha256 == _sha256(tmp_path / "reference.parquet")
        assert default.model_version is None and default.version == 1
    finally:
        app.store.close()
