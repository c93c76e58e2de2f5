"""The `driftd` command line (contract §2). Exit codes: 0 ok, 1 drift (check), 2 error."""

from __future__ import annotations

import argparse
import csv
import getpass
import io
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftd import __version__

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def _parse_time(value: str) -> datetime:
    """RFC 3339 (zone required unless a bare date) → naive UTC."""
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC).replace(tzinfo=None)
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected RFC 3339 like 2026-11-22T07:00:00Z or a date") from exc
    if ts.tzinfo is None:
        if "T" in text or " " in text:
            raise argparse.ArgumentTypeError(f"{value!r}: give a zone (Z or +01:00)")
        return ts
    return ts.astimezone(UTC).replace(tzinfo=None)


def _parse_duration(value: str) -> timedelta:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a duration like 30m, 2h, 1d")
    n, unit = float(match.group(1)), match.group(2)
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit])


def _load(path: str):
    from driftd.monitor.config import load_config

    return load_config(path)


def _app(path: str):
    from driftd.monitor.logs import setup_logging
    from driftd.monitor.service.app import build

    loaded = _load(path)
    setup_logging(loaded.config.log.level, loaded.config.log.format)
    return build(loaded)


def _write_text(path: Path, text: str) -> None:
    """Write an output file atomically, creating its folder (as `report` and `export` do)."""
    from driftd.reports.render import write_report_file

    write_report_file(path, text)


def _model(app_or_loaded, name: str):
    config = getattr(app_or_loaded, "config", None) or app_or_loaded.config
    if name not in config.models:
        known = ", ".join(sorted(config.models))
        raise CliError(f"unknown model {name!r} (configured: {known})")
    return config.models[name]


# --- commands ------------------------------------------------------------------------------


def cmd_validate(args) -> int:
    from driftd.monitor.config import ConfigError, load_config

    try:
        loaded = load_config(args.file)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_ERROR
    cfg = loaded.config
    if not args.no_environment:
        from driftd.monitor.config import check_environment

        problems = check_environment(cfg)
        if problems:
            print(ConfigError(args.file, problems).render(), file=sys.stderr)
            return EXIT_ERROR
    store = "lake " + cfg.store.lake.data_path if cfg.store.lake else "file"
    print(f"{args.file}: valid ({len(cfg.models)} model(s), {len(cfg.sinks)} sink(s), "
          f"kafka {'configured' if cfg.kafka else 'not configured'}, store {store})")
    return EXIT_OK


def cmd_run(args) -> int:
    from kafka.errors import KafkaError

    app = _app(args.config)
    if args.once:
        try:
            return app.run_once()
        except KafkaError as exc:
            raise CliError(f"kafka: {type(exc).__name__}: {exc}") from exc
    return app.run_forever()


def cmd_reference_add(args) -> int:
    from driftd.monitor.store.references import register_reference

    app = _app(args.config)
    cfg = _model(app, args.model)
    reg = register_reference(app.store, args.model, cfg, Path(args.file))
    rec = reg.record
    state = "registered" if reg.created else "unchanged (same sha256)"
    print(json.dumps({"model": rec.model, "version": rec.version, "sha256": rec.sha256,
                      "rows": rec.rows, "schema": rec.schema, "status": state}, indent=2))
    return EXIT_OK


def cmd_replay(args) -> int:
    from driftd.monitor.ingest.replay import replay_file

    app = _app(args.config)
    path = Path(args.file)
    if not path.exists():
        raise CliError(f"{path}: file not found")
    stats = replay_file(path, args.kind, app.decoder, app.store, app.metrics)
    print(f"{path}: {stats.lines} records, {stats.stored} events stored, {stats.labels} labels, "
          f"{stats.duplicates} already stored, {stats.quarantined} quarantined")
    return EXIT_OK


def cmd_report(args) -> int:
    if args.evidently:
        from driftd.reports.evidently_appendix import EvidentlyMissing, evidently_available

        if not evidently_available():
            raise CliError(str(EvidentlyMissing()))
    app = _app(args.config)
    out = app.reports.write_run(args.run, out=Path(args.out),
                                evidently=True if args.evidently else None)
    if out is None:
        raise CliError(f"no stored run {args.run!r} with results" if args.run
                       else "no stored runs with results yet")
    print(out)
    return EXIT_OK


def cmd_export(args) -> int:
    from driftd.monitor.store.export import export_training_data

    app = _app(args.config)
    cfg = _model(app, args.model)
    manifest = export_training_data(app.store, args.model, cfg, Path(args.out),
                                    since=args.since, until=args.until)
    print(json.dumps({k: manifest[k] for k in ("rows", "labelled_rows", "time_range")}))
    return EXIT_OK


def cmd_backfill(args) -> int:
    from driftd.monitor.service.backfill import backfill

    app = _app(args.config)
    _model(app, args.model)
    outcomes = backfill(app, args.model, args.since, args.until,
                        progress=sys.stderr.isatty())
    drift = sum(o.status == "drift" for o in outcomes)
    print(f"{len(outcomes)} window(s) evaluated, {drift} with drift")
    return EXIT_ERROR if any(o.status == "error" for o in outcomes) else EXIT_OK


HISTORY_FIELDS = ("window_start", "window_end", "rows", "feature", "method", "statistic",
                  "p_value", "threshold", "drifted")


def cmd_history(args) -> int:
    from driftd.monitor.service.backfill import history_rows

    app = _app(args.config)
    _model(app, args.model)
    rows = history_rows(app.store, args.model, feature=args.feature)
    if args.format == "json":
        print(json.dumps(rows, indent=1, default=str))
    elif args.format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        _table(rows, HISTORY_FIELDS)
    return EXIT_OK


def cmd_quarantine(args) -> int:
    app = _app(args.config)
    rows = app.store.quarantine_rows(limit=args.limit)
    out = []
    for r in rows:
        where = (f"{r['topic']}[{r['partition']}]@{r['offset']}" if r["source"] == "kafka"
                 else f"{r['source']}:{r['line']}")
        raw = bytes(r["raw"] or b"")
        out.append({"received_at": r["received_at"], "source": r["source"], "where": where,
                    "topic": r["topic"], "partition": r["partition"], "offset": r["offset"],
                    "line": r["line"], "model": r["model"], "reason_code": r["reason_code"],
                    "reason": r["reason"],
                    "first_bytes": raw[:80].decode("utf-8", errors="backslashreplace")})
    if args.format == "json":
        print(json.dumps(out, indent=1, default=str))
    else:
        _table(out, ("received_at", "where", "reason_code", "reason", "first_bytes"))
    return EXIT_OK


def cmd_alerts(args) -> int:
    app = _app(args.config)
    states = app.alerts.states()
    rows = [{"model": s.model, "status": s.status, "severity": s.severity,
             "opened_at": s.opened_at, "last_seen": s.last_seen, "resolved_at": s.resolved_at,
             "silenced_until": s.silenced_until, "silence_reason": s.silence_reason}
            for s in states]
    if args.format == "json":
        print(json.dumps({"alerts": rows, "deliveries": app.outbox.deliveries()}, indent=1,
                         default=str))
    else:
        _table(rows, ("model", "status", "severity", "opened_at", "last_seen", "silenced_until"))
        print()
        _table(app.outbox.deliveries(), ("created_at", "sink", "event_type", "model", "status",
                                         "attempts", "last_error"))
    return EXIT_OK


def cmd_silence(args) -> int:
    app = _app(args.config)
    _model(app, args.model)
    until = datetime.now(UTC).replace(tzinfo=None) + args.duration
    state = app.alerts.silence(args.model, until=until, reason=args.reason,
                               by=args.by or getpass.getuser())
    print(f"{args.model}: silenced until {state.silenced_until.isoformat()}Z by "
          f"{state.silenced_by}: {state.silence_reason}")
    return EXIT_OK


def cmd_check(args) -> int:
    from driftd.api import compare, to_json

    categorical = [c for c in (args.categorical or "").split(",") if c]
    stattest = [m for m in (args.stattest or "").split(",") if m] if args.stattest else None
    for path in (args.reference, args.current):
        if not Path(path).exists():
            raise CliError(f"{path}: file not found")
    if stattest is not None and not stattest:
        raise CliError("--stattest names no method")
    try:
        comparison = compare(args.reference, args.current, categorical=categorical,
                             prediction=args.prediction_column, label=args.label_column,
                             stattest=stattest)
    except (ValueError, KeyError) as exc:
        raise CliError(str(exc)) from exc
    result = comparison.result
    if args.report:
        from driftd.reports.render import render_check

        html = render_check(result, reference_name=Path(args.reference).name,
                            current_name=Path(args.current).name,
                            generated_at=datetime.now(UTC))
        _write_text(Path(args.report), html)
    if args.format == "json":
        print(to_json(result))
    else:
        print(comparison.to_table())
    return EXIT_DRIFT if result.drift else EXIT_OK


def cmd_compact(args) -> int:
    from driftd.monitor.store.duckdb_file import open_store
    from driftd.monitor.store.retention import apply_retention, compact

    loaded = _load(args.config)
    store = open_store(loaded)
    if loaded.config.store.lake is not None:
        return _compact_lake(store, loaded.config)
    try:
        stats = apply_retention(store, loaded.config, datetime.now(UTC).replace(tzinfo=None))
        store.con.execute("CHECKPOINT")
    finally:
        store.close()
    before, after = compact(loaded.store_path)
    print(f"{loaded.store_path}: retention removed {stats.events} events, {stats.labels} labels, "
          f"{stats.quarantine} quarantined; {before:,} -> {after:,} bytes")
    return EXIT_OK


def _compact_lake(store, config) -> int:
    """The lake is compacted online, by whichever process holds the maintenance lease."""
    try:
        if not store.leases.hold("maintenance"):
            raise CliError("a running replica holds the maintenance lease and compacts the lake "
                           f"every {config.store.lake.maintenance_interval_seconds:g} s; "
                           "nothing to do here")
        before = store.data_files()
        stats = store.maintain(config, datetime.now(UTC).replace(tzinfo=None))
        after = store.data_files()
    finally:
        store.close()
    print(f"{config.store.lake.data_path}: retention removed {stats.events} events, "
          f"{stats.labels} labels, {stats.quarantine} quarantined; {before[0]:,} files "
          f"({before[1]:,} bytes) -> {after[0]:,} files ({after[1]:,} bytes)")
    return EXIT_OK


def cmd_demo(args) -> int:
    from driftd.monitor.demo.run import run_demo

    return run_demo(Path(args.out), duration=args.duration)


def _table(rows: Sequence[dict], fields: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return

    def fmt(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, datetime):
            return v.isoformat(timespec="seconds")
        return str(v).replace("\n", " ")[:60]

    cells = [[fmt(r.get(f)) for f in fields] for r in rows]
    widths = [max(len(f), *(len(c[i]) for c in cells)) for i, f in enumerate(fields)]
    print("  ".join(f.ljust(w) for f, w in zip(fields, widths, strict=True)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


# --- parser --------------------------------------------------------------------------------

EXIT_CODES = {
    "plain": "exit codes: 0 done, 2 error (the reason on one line; --debug shows the stack)",
    "check": "exit codes: 0 no drift, 1 drift, 2 error (nothing could be compared)",
    "run": "exit codes: 0 stopped cleanly (SIGTERM/SIGINT) or --once found no error; 2 error",
    "validate": "exit codes: 0 valid, 2 invalid (every error with its path and line)",
}


def _epilog(example: str, codes: str = "plain") -> str:
    return f"example:\n  {example}\n\n{EXIT_CODES[codes]}"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, print the Python stack as well as the message")
    p = argparse.ArgumentParser(
        prog="driftd", parents=[common],
        description="Drift monitoring for ML models: a daemon (run) and batch tools.",
        epilog=_epilog("driftd check --reference train.parquet --current today.parquet",
                       "check") + "\n(per command; see driftd COMMAND --help)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"driftd {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help_: str, example: str, codes: str = "plain",
            parent=sub) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help_, description=help_, parents=[common],
                               epilog=_epilog(example, codes),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=func)
        return sp

    def config_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", required=True, metavar="FILE",
                        help="the driftd config file (YAML)")

    def model_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", required=True, metavar="M",
                        help="a model name configured under models:")

    sp = add("run", cmd_run, "run the daemon (or one cycle with --once)",
             "driftd run --config driftd.yaml", "run")
    config_arg(sp)
    sp.add_argument("--once", action="store_true",
                    help="ingest what is available now, run every model's detectors, deliver "
                         "due alerts, write reports, then exit")

    sp = add("validate-config", cmd_validate, "validate a config file",
             "driftd validate-config driftd.yaml", "validate")
    sp.add_argument("file", help="the config file to validate")
    sp.add_argument("--no-environment", action="store_true",
                    help="check the file only, not that store.lake's catalog and data path "
                         "answer")

    sp = add("check", cmd_check, "compare two files for drift (no daemon, no config)",
             "driftd check --reference train.parquet --current today.csv --categorical region "
             "--format json", "check")
    sp.add_argument("--reference", required=True, metavar="FILE",
                    help="the training (reference) data: Parquet or CSV")
    sp.add_argument("--current", required=True, metavar="FILE",
                    help="the data to compare against it: Parquet or CSV")
    sp.add_argument("--categorical", metavar="A,B",
                    help="columns to treat as categories even if they hold numbers")
    sp.add_argument("--prediction-column", metavar="COL",
                    help="the model's output column (prediction drift, calibration)")
    sp.add_argument("--label-column", metavar="COL",
                    help="the ground-truth column (calibration, performance); needs "
                         "--prediction-column")
    sp.add_argument("--stattest", metavar="M1,M2",
                    help="run exactly these methods on every column they apply to: ks, psi, "
                         "chisquare, jensenshannon, wasserstein (default: an automatic choice "
                         "per column, docs/detectors.md)")
    sp.add_argument("--format", choices=("table", "json"), default="table",
                    help="table for people, json for pipelines (default: table)")
    sp.add_argument("--report", metavar="OUT.html",
                    help="also write a self-contained HTML report here")

    sp = add("reference", lambda a: a.parser.print_help() or EXIT_ERROR,
             "manage training references",
             "driftd reference add --config driftd.yaml --model credit-risk --file train.parquet")
    rsub = sp.add_subparsers(dest="reference_command", required=True, metavar="ACTION")
    ra = add("add", cmd_reference_add, "register a training reference (hash, rows, schema, "
             "version)", "driftd reference add --config driftd.yaml --model credit-risk "
             "--file train.parquet", parent=rsub)
    config_arg(ra)
    model_arg(ra)
    ra.add_argument("--file", required=True, metavar="PATH",
                    help="the reference file: Parquet or CSV with the feature columns")

    sp = add("replay", cmd_replay, "ingest JSONL or Parquet events/labels",
             "driftd replay --config driftd.yaml --file events.jsonl")
    config_arg(sp)
    sp.add_argument("--file", required=True, metavar="F",
                    help="JSONL (one event per line) or Parquet (one event per row)")
    sp.add_argument("--kind", choices=("events", "labels"), default="events",
                    help="what the file holds (default: events)")

    sp = add("report", cmd_report, "write the HTML report of a stored run",
             "driftd report --config driftd.yaml --out report.html")
    config_arg(sp)
    sp.add_argument("--run", metavar="RUN_ID", help="the run (default: the latest)")
    sp.add_argument("--out", required=True, metavar="PATH", help="where to write the HTML")
    sp.add_argument("--evidently", action="store_true",
                    help="also write Evidently's DataDriftPreset report beside it, linked "
                         "(needs pip install 'driftd[evidently]')")

    sp = add("export", cmd_export, "export logged features joined with labels to Parquet",
             "driftd export --config driftd.yaml --model credit-risk --since 2026-11-01 "
             "--out exports/nov")
    config_arg(sp)
    model_arg(sp)
    sp.add_argument("--since", type=_parse_time, metavar="T",
                    help="first event time included (RFC 3339, a date, or epoch ms)")
    sp.add_argument("--until", type=_parse_time, metavar="T",
                    help="event time up to which rows are exported (exclusive)")
    sp.add_argument("--out", required=True, metavar="DIR",
                    help="directory for the Parquet files and manifest.json")

    sp = add("backfill", cmd_backfill, "evaluate every window in a time range",
             "driftd backfill --config driftd.yaml --model credit-risk --since 2026-11-01 "
             "--until 2026-11-08")
    config_arg(sp)
    model_arg(sp)
    sp.add_argument("--since", type=_parse_time, required=True, metavar="T",
                    help="start of the first window (RFC 3339, a date, or epoch ms)")
    sp.add_argument("--until", type=_parse_time, required=True, metavar="T",
                    help="end of the last window")

    sp = add("history", cmd_history, "per-window results over time",
             "driftd history --config driftd.yaml --model credit-risk --format csv")
    config_arg(sp)
    model_arg(sp)
    sp.add_argument("--feature", metavar="X", help="only this feature's findings")
    sp.add_argument("--format", choices=("table", "json", "csv"), default="table",
                    help="output format (default: table)")

    sp = add("quarantine", cmd_quarantine, "list quarantined messages",
             "driftd quarantine --config driftd.yaml --format json")
    config_arg(sp)
    sp.add_argument("--format", choices=("table", "json"), default="table",
                    help="output format (default: table)")
    sp.add_argument("--limit", type=int, default=1000, metavar="N",
                    help="newest N messages (default: 1000)")

    sp = add("alerts", cmd_alerts, "list alert state and deliveries",
             "driftd alerts --config driftd.yaml")
    config_arg(sp)
    sp.add_argument("--format", choices=("table", "json"), default="table",
                    help="output format (default: table)")

    sp = add("silence", cmd_silence, "silence a model's alerts for a while",
             "driftd silence --config driftd.yaml --model credit-risk --for 2h "
             "--reason 'planned migration'")
    config_arg(sp)
    model_arg(sp)
    sp.add_argument("--for", dest="duration", type=_parse_duration, required=True,
                    metavar="DURATION", help="how long: 30m, 2h, 1d, 1w")
    sp.add_argument("--reason", required=True, help="why (shown in driftd alerts)")
    sp.add_argument("--by", help="who silenced it (default: the current user)")

    sp = add("compact", cmd_compact,
             "apply retention and rewrite the store file smaller (daemon stopped)",
             "driftd compact --config driftd.yaml")
    config_arg(sp)

    sp = add("demo", cmd_demo, "the whole loop on this machine",
             "driftd demo --out demo-out --duration 45")
    sp.add_argument("--out", default="demo-out", metavar="DIR",
                    help="where the store, reports and received alerts go (default: demo-out)")
    sp.add_argument("--duration", type=float, default=45.0, metavar="SECONDS",
                    help="how long traffic runs (default: 45)")
    return p


def describe_error(exc: BaseException) -> str:
    """One line for an expected problem: what went wrong and where, no stack."""
    from driftd.monitor.errors import user_message

    return user_message(exc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.parser = parser
    debug = getattr(args, "debug", False)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return EXIT_ERROR
    except Exception as exc:  # every failure is one line; --debug adds the stack
        if debug:
            import traceback

            traceback.print_exc()
        from driftd.monitor.config import ConfigError

        if isinstance(exc, ConfigError):
            print(exc.render(), file=sys.stderr)
        else:
            print(f"driftd: error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
