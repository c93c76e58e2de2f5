"""`driftd report`: regenerate a stored run's report, optionally with the Evidently appendix."""



from driftd.monitor.cli import main
from driftd.monitor.config import load_config
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from tests.monitor.conftest import write_config, write_events


def _stored_run(tmp_path):
    path = write_config(tmp_path)
    app = build(load_config(path))
    write_events(tmp_path / "ev.jsonl", 800, seed=8)
    replay_file(tmp_path / "ev.jsonl", "events", app.decoder, app.store)
    app.run_once()
    run_id = app.store.run()["run_id"]
    app.store.close()
    return path, run_id


def test_report_regenerates_a_stored_run_with_evidently_appendix(tmp_path, capsys):
    path, run_id = _stored_run(tmp_path)
    out = tmp_path / "audit" / "run.html"
    assert main(["report", "--config", str(path), "--run", run_id, "--out", str(out),
                 "--evidently"]) == 0
    html = out.read_text()
    assert run_id in html
    appendix = tmp_path / "audit" / f"{run_id}-evidently.html"
    assert appendix.exists() and appendix.stat().st_size > 10_000
    assert f'href="{run_id}-evidently.html"' in html


def test_report_latest_and_unknown_run(tmp_path, capsys):
    path, run_id = _stored_run(tmp_path)
    assert main(["report", "--config", str(path), "--out", str(tmp_path / "l.html")]) == 0
    assert run_id in (tmp_path / "l.html").read_text()
    assert main(["report", "--config", str(path), "--run", "nope",
                 "--out", str(tmp_path / "x.html")]) == 2
    assert "no stored run 'nope'" in capsys.readouterr().err
