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

from monitor import __version__

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
    from monitor.config import load_config

    return load_config(path)


def _app(path: str):
    from monitor.app import build
    from monitor.logs import setup_logging

    loaded = _load(path)
    setup_logging(loaded.config.log.level, loaded.config.log.format)
    return build(loaded)


def _model(app_or_loaded, name: str):
    config = getattr(app_or_loaded, "config", None) or app_or_loaded.config
    if name not in config.models:
        known = ", ".join(sorted(config.models))
        raise CliError(f"unknown model {name!r} (configured: {known})")
    return config.models[name]


# --- commands ------------------------------------------------------------------------------


def cmd_validate(args) -> int:
    from monitor.config import ConfigError, load_config

    try:
        loaded = load_config(args.file)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_ERROR
    cfg = loaded.config
    print(f"{args.file}: valid ({len(cfg.models)} model(s), {len(cfg.sinks)} sink(s), "
          f"kafka {'configured' if cfg.kafka else 'not configured'})")
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
    from monitor.references import register_reference

    app = _app(args.config)
    cfg = _model(app, args.model)
    reg = register_reference(app.store, args.model, cfg, Path(args.file))
    rec = reg.record
    state = "registered" if reg.created else "unchanged (same sha256)"
    print(json.dumps({"model": rec.model, "version": rec.version, "sha256": rec.sha256,
                      "rows": rec.rows, "schema": rec.schema, "status": state}, indent=2))
    return EXIT_OK


def cmd_replay(args) -> int:
    from monitor.replay import replay_file

    app = _app(args.config)
    path = Path(args.file)
    if not path.exists():
        raise CliError(f"{path}: file not found")
    stats = replay_file(path, args.kind, app.decoder, app.store, app.metrics)
    print(f"{path}: {stats.lines} records, {stats.stored} events stored, {stats.labels} labels, "
          f"{stats.duplicates} already stored, {stats.quarantined} quarantined")
    return EXIT_OK


def cmd_report(args) -> int:
    app = _app(args.config)
    out = app.reports.write_run(args.run, out=Path(args.out),
                                evidently=True if args.evidently else None)
    if out is None:
        raise CliError(f"no stored run {args.run!r} with results" if args.run
                       else "no stored runs with results yet")
    print(out)
    return EXIT_OK


def cmd_export(args) -> int:
    from monitor.export import export_training_data

    app = _app(args.config)
    cfg = _model(app, args.model)
    manifest = export_training_data(app.store, args.model, cfg, Path(args.out),
                                    since=args.since, until=args.until)
    print(json.dumps({k: manifest[k] for k in ("rows", "labelled_rows", "time_range")}))
    return EXIT_OK


def cmd_backfill(args) -> int:
    from monitor.backfill import backfill

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
    from monitor.backfill import history_rows

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
    from detectors.check import check_payload, compare_files, format_table

    categorical = [c for c in (args.categorical or "").split(",") if c]
    stattest = [m for m in (args.stattest or "").split(",") if m] or None
    for path in (args.reference, args.current):
        if not Path(path).exists():
            raise CliError(f"{path}: file not found")
    try:
        result = compare_files(args.reference, args.current, categorical=categorical,
                               prediction_column=args.prediction_column,
                               label_column=args.label_column, stattest=stattest)
    except (ValueError, KeyError) as exc:
        raise CliError(str(exc)) from exc
    if args.report:
        from reports.render import render_check

        html = render_check(result, reference_name=Path(args.reference).name,
                            current_name=Path(args.current).name,
                            generated_at=datetime.now(UTC))
        Path(args.report).write_text(html, encoding="utf-8")
    if args.format == "json":
        print(json.dumps(check_payload(result), default=_json_default))
    else:
        print(format_table(result))
    return EXIT_DRIFT if result.drift else EXIT_OK


def _json_default(value):
    if isinstance(value, float):
        return None
    return str(value)


def cmd_compact(args) -> int:
    from monitor.retention import apply_retention, compact
    from monitor.store import open_store

    loaded = _load(args.config)
    store = open_store(loaded)
    try:
        stats = apply_retention(store, loaded.config, datetime.now(UTC).replace(tzinfo=None))
        store.con.execute("CHECKPOINT")
    finally:
        store.close()
    before, after = compact(loaded.store_path)
    print(f"{loaded.store_path}: retention removed {stats.events} events, {stats.labels} labels, "
          f"{stats.quarantine} quarantined; {before:,} -> {after:,} bytes")
    return EXIT_OK


def cmd_demo(args) -> int:
    from monitor.demo import run_demo

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="driftd", description="Drift monitoring for ML models.")
    p.add_argument("--version", action="version", version=f"driftd {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        return sp

    sp = add("run", cmd_run, "run the daemon (or one cycle with --once)")
    sp.add_argument("--config", required=True)
    sp.add_argument("--once", action="store_true")

    sp = add("validate-config", cmd_validate, "validate a config file")
    sp.add_argument("file")

    sp = add("check", cmd_check, "compare two files for drift (no daemon, no config)")
    sp.add_argument("--reference", required=True)
    sp.add_argument("--current", required=True)
    sp.add_argument("--categorical")
    sp.add_argument("--prediction-column")
    sp.add_argument("--label-column")
    sp.add_argument("--stattest", help="comma-separated methods, e.g. ks,psi")
    sp.add_argument("--format", choices=("table", "json"), default="table")
    sp.add_argument("--report", help="also write a self-contained HTML report here")

    sp = add("reference", lambda a: a.parser.print_help() or EXIT_ERROR,
             "manage training references")
    rsub = sp.add_subparsers(dest="reference_command", required=True, metavar="ACTION")
    ra = rsub.add_parser("add", help="register a training reference")
    ra.set_defaults(func=cmd_reference_add)
    ra.add_argument("--config", required=True)
    ra.add_argument("--model", required=True)
    ra.add_argument("--file", required=True)

    sp = add("replay", cmd_replay, "ingest JSONL or Parquet events/labels")
    sp.add_argument("--config", required=True)
    sp.add_argument("--file", required=True)
    sp.add_argument("--kind", choices=("events", "labels"), default="events")

    sp = add("report", cmd_report, "write the HTML report of a stored run")
    sp.add_argument("--config", required=True)
    sp.add_argument("--run")
    sp.add_argument("--out", required=True)
    sp.add_argument("--evidently", action="store_true",
                    help="also write Evidently's DataDriftPreset report beside it, linked")

    sp = add("export", cmd_export, "export logged features joined with labels to Parquet")
    sp.add_argument("--config", required=True)
    sp.add_argument("--model", required=True)
    sp.add_argument("--since", type=_parse_time)
    sp.add_argument("--until", type=_parse_time)
    sp.add_argument("--out", required=True)

    sp = add("backfill", cmd_backfill, "evaluate every window in a time range")
    sp.add_argument("--config", required=True)
    sp.add_argument("--model", required=True)
    sp.add_argument("--since", type=_parse_time, required=True)
    sp.add_argument("--until", type=_parse_time, required=True)

    sp = add("history", cmd_history, "per-window results over time")
    sp.add_argument("--config", required=True)
    sp.add_argument("--model", required=True)
    sp.add_argument("--feature")
    sp.add_argument("--format", choices=("table", "json", "csv"), default="table")

    sp = add("quarantine", cmd_quarantine, "list quarantined messages")
    sp.add_argument("--config", required=True)
    sp.add_argument("--format", choices=("table", "json"), default="table")
    sp.add_argument("--limit", type=int, default=1000)

    sp = add("alerts", cmd_alerts, "list alert state and deliveries")
    sp.add_argument("--config", required=True)
    sp.add_argument("--format", choices=("table", "json"), default="table")

    sp = add("silence", cmd_silence, "silence a model's alerts for a while")
    sp.add_argument("--config", required=True)
    sp.add_argument("--model", required=True)
    sp.add_argument("--for", dest="duration", type=_parse_duration, required=True)
    sp.add_argument("--reason", required=True)
    sp.add_argument("--by")

    sp = add("compact", cmd_compact,
             "apply retention and rewrite the store file smaller (daemon stopped)")
    sp.add_argument("--config", required=True)

    sp = add("demo", cmd_demo, "the whole loop on this machine")
    sp.add_argument("--out", default="demo-out")
    sp.add_argument("--duration", type=float, default=45.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from monitor.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.parser = parser
    try:
        return args.func(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_ERROR
    except CliError as exc:
        print(f"driftd: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        print(f"driftd: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
