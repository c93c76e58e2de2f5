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
from dataclasses import asdict
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


def _memory_mb(value: str) -> int:
    if not value.isdigit() or int(value) < 16:
        raise argparse.ArgumentTypeError(f"{value!r}: a whole number of MiB, at least 16")
    return int(value)


def _load(path: str):
    from driftd.monitor.config import load_config

    return load_config(path)


def _app(path: str):
    from driftd.monitor.config import config_secrets
    from driftd.monitor.logs import setup_logging
    from driftd.monitor.service.app import build

    loaded = _load(path)
    setup_logging(loaded.config.log.level, loaded.config.log.format,
                  config_secrets(loaded.config))
    return build(loaded)


def _write_text(path: Path, text: str) -> None:
    """Write an output file atomically, creating its folder (as `report` and `export` do)."""
    from driftd.reports.render import write_report_file

    write_report_file(path, text)


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


def _store_alone(args, what: str):
    """The app on a store this process must hold itself (`run --once`, `compact`)."""
    try:
        return _app(args.config)
    except Exception as exc:
        from driftd.monitor.errors import store_lock_holder

        pid = store_lock_holder(exc)
        if pid is None:
            raise
        holder = f" (PID {pid})" if pid else ""
        raise CliError(
            f"the store {_load(args.config).store_path} is held by another process{holder}, "
            f"most likely the daemon: {what} needs the store to itself; stop the daemon first "
            "(store commands such as alerts, silence or backfill work beside it)") from exc


def _store_command(args, name: str, command_args):
    """Run a store command (monitor/service/commands.py) here, or — when the daemon holds the
    store — in the daemon, through its admin API. (command, typed result) either way."""
    from driftd.monitor.errors import store_lock_holder
    from driftd.monitor.service.commands import COMMANDS

    command = COMMANDS[name]
    try:
        app = _app(args.config)
    except Exception as exc:
        if store_lock_holder(exc) is None:
            raise
        return command, _in_daemon(_load(args.config), command, command_args, exc)
    try:
        return command, command.run(app, command_args)
    finally:
        app.store.close()


def _in_daemon(loaded, command, command_args, locked: Exception):
    from driftd.monitor.admin_client import AdminUnavailable, call, find_daemon
    from driftd.monitor.errors import user_message

    address = find_daemon(loaded)
    if address is None:
        raise locked
    try:
        return call(address, command, command_args)
    except AdminUnavailable as exc:
        raise CliError(f"{user_message(locked)}; {exc}") from None


def _print_json(command, result, indent: int | None = 1) -> None:
    from driftd.monitor.service.commands import to_json

    print(json.dumps(to_json(command, result), indent=indent))


def _rows(items) -> list[dict]:
    return [asdict(item) for item in items]


def cmd_run(args) -> int:
    from kafka.errors import KafkaError

    if args.once:
        app = _store_alone(args, "`driftd run --once`")
        try:
            return app.run_once()
        except KafkaError as exc:
            raise CliError(f"kafka: {type(exc).__name__}: {exc}") from exc
    return _app(args.config).run_forever()


def _absolute_file(value: str) -> str:
    path = Path(value)
    if not path.exists():
        raise CliError(f"{path}: file not found")
    return str(path.resolve())


def cmd_reference_add(args) -> int:
    from driftd.monitor.service.commands import ReferenceAddArgs

    command, result = _store_command(args, "reference-add", ReferenceAddArgs(
        args.model, str(Path(args.file).resolve()), args.model_version))
    _print_json(command, result, indent=2)
    return EXIT_OK


def cmd_replay(args) -> int:
    from driftd.monitor.service.commands import ReplayArgs

    _, r = _store_command(args, "replay", ReplayArgs(_absolute_file(args.file), args.kind))
    path = Path(args.file)
    print(f"{path}: {r.lines} records, {r.stored} events stored, {r.labels} labels, "
          f"{r.duplicates} already stored, {r.quarantined} quarantined")
    if r.quarantined:
        print(f"driftd: {r.quarantined} of {r.lines} records quarantined; see driftd "
              f"quarantine --config {args.config}", file=sys.stderr)
    if r.lines == 0:
        raise CliError(f"{path}: no records in the file; nothing stored")
    if r.stored + r.labels + r.duplicates == 0:
        raise CliError(f"{path}: nothing stored: all {r.lines} records were quarantined")
    return EXIT_OK


def cmd_report(args) -> int:
    from driftd.monitor.service.commands import ReportArgs
    from driftd.reports.render import write_report

    if args.evidently:
        from driftd.reports.evidently_appendix import EvidentlyMissing, evidently_available

        if not evidently_available():
            raise CliError(str(EvidentlyMissing()))
    _, result = _store_command(args, "report", ReportArgs(args.run, args.evidently))
    out = Path(args.out)
    if result.appendix is not None:  # beside the report, which links it by name
        write_report(out.parent, result.appendix.name, result.appendix.html)
    _write_text(out, result.html)
    print(out)
    return EXIT_OK


def time_range_args(sp, since_help: str, until_help: str) -> None:
    """Optional `--since` / `--until` (RFC 3339, a date, or epoch ms)."""
    sp.add_argument("--since", type=_parse_time, metavar="T", help=since_help)
    sp.add_argument("--until", type=_parse_time, metavar="T", help=until_help)


def cmd_compare_versions(args) -> int:
    from driftd.monitor.service.commands import CompareVersionsArgs, check_range

    check_range(args.since, args.until)
    command, result = _store_command(args, "compare-versions", CompareVersionsArgs(
        args.model, args.champion, args.challenger, since=args.since, until=args.until,
        report=args.report is not None))
    c = result.comparison
    if args.report is not None:
        _write_text(Path(args.report), result.html)
    if args.format == "json":
        print(json.dumps(c.to_dict(), indent=1))
    else:
        rows = [{"": "events", c.champion.version: c.champion.rows,
                 c.challenger.version: c.challenger.rows, "difference": None},
                {"": "ece", c.champion.version: c.champion.ece,
                 c.challenger.version: c.challenger.ece, "difference": c.ece_difference}]
        rows += [{"": m.name, c.champion.version: m.champion,
                  c.challenger.version: m.challenger, "difference": m.difference}
                 for m in c.metrics]
        rows += [{"": f"prediction {p.method}", c.champion.version: None,
                  c.challenger.version: p.statistic, "difference": None}
                 for p in c.prediction]
        _table(rows, ("", c.champion.version, c.challenger.version, "difference"))
        print(c.verdict)
    return EXIT_OK


def cmd_verify(args) -> int:
    from driftd.monitor.store.verify import verify_store, verify_tables

    loaded = _load(args.config)
    lake = loaded.config.store.lake
    if lake is not None:  # read beside the running replicas
        from driftd.monitor.store.duckdb_file import open_store

        store = open_store(loaded)
        try:
            with store.parallel():
                checks = verify_tables(store.con)
        finally:
            store.close()
        where, what = f"lake {lake.data_path}", "every data file read"
    else:
        checks = verify_store(loaded.store_path)
        where, what = str(loaded.store_path), "every block's checksum matches"
    rows = [{"table": c.table, "rows": c.rows,
             "status": "damaged" if c.damaged else ("error" if c.error else "ok"),
             "error": c.error} for c in checks]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        _table(rows, ("table", "rows", "status", "error"))
    bad = [c for c in checks if c.error]
    if bad:
        damaged = any(c.damaged for c in bad)
        print(f"driftd: error: {where}: {len(bad)} of {len(checks)} tables could "
              f"not be read{' (damaged: a block checksum does not match)' if damaged else ''}; "
              "see docs/operations.md, \"Runbook: store damaged\"", file=sys.stderr)
        return EXIT_ERROR
    print(f"{where}: ok ({len(checks)} tables, {sum(c.rows or 0 for c in checks)} "
          f"rows; {what})", file=sys.stderr)
    return EXIT_OK


def cmd_export(args) -> int:
    from driftd.monitor.service.commands import ExportArgs, check_range

    check_range(args.since, args.until)  # before the store is opened
    command, result = _store_command(args, "export", ExportArgs(
        args.model, str(Path(args.out).resolve()), since=args.since, until=args.until))
    _print_json(command, result, indent=None)
    return EXIT_OK


def cmd_backfill(args) -> int:
    from driftd.monitor.service.commands import BackfillArgs, check_range

    check_range(args.since, args.until)
    _, summary = _store_command(args, "backfill", BackfillArgs(
        args.model, args.since, args.until, progress=sys.stderr.isatty()))
    print(summary.text)
    if summary.windows == 0:
        raise CliError(f"no window to evaluate between {args.since:%Y-%m-%dT%H:%M:%SZ} and "
                       f"{args.until:%Y-%m-%dT%H:%M:%SZ}")
    if summary.errors:
        raise CliError(f"{summary.errors} window(s) failed: {summary.first_error}")
    if summary.evaluated == 0:
        raise CliError(f"nothing evaluated: all {summary.windows} window(s) skipped "
                       f"({summary.first_skip})")
    return EXIT_OK


HISTORY_FIELDS = ("window_start", "window_end", "rows", "feature", "method", "statistic",
                  "p_value", "threshold", "drifted")


def cmd_history(args) -> int:
    from driftd.monitor.service.commands import HistoryArgs

    command, result = _store_command(args, "history", HistoryArgs(args.model, args.feature,
                                                                  args.segment))
    rows = _rows(result)
    if args.format == "json":
        _print_json(command, result)
    elif args.format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        _table(rows, HISTORY_FIELDS + (("segment",) if args.segment else ()))
    return EXIT_OK


def cmd_quarantine(args) -> int:
    from driftd.monitor.service.commands import QuarantineArgs

    command, result = _store_command(args, "quarantine", QuarantineArgs(args.limit))
    if args.format == "json":
        _print_json(command, result)
    else:
        _table(_rows(result), ("received_at", "where", "reason_code", "reason", "first_bytes"))
    return EXIT_OK


def cmd_alerts(args) -> int:
    from driftd.monitor.service.commands import AlertsArgs

    command, result = _store_command(args, "alerts", AlertsArgs())
    if args.format == "json":
        _print_json(command, result)
        return EXIT_OK
    _table(_rows(result.alerts),
           ("model", "status", "severity", "opened_at", "last_seen", "silenced_until"))
    print()
    _table(_rows(result.deliveries), ("created_at", "delivery_id", "sink", "event_type", "model",
                                      "status", "attempts", "next_attempt_at", "last_error"))
    if result.dead:
        print(f"\n{result.dead} dead deliver{'y' if result.dead == 1 else 'ies'}: send again "
              f"with driftd redeliver --config {args.config} --dead")
    return EXIT_OK


def cmd_silence(args) -> int:
    from driftd.monitor.service.commands import SilenceArgs

    _, r = _store_command(args, "silence", SilenceArgs(
        args.model, args.duration.total_seconds(), args.reason, args.by or getpass.getuser()))
    print(f"{r.model}: silenced until {r.silenced_until.isoformat()}Z by {r.silenced_by}: "
          f"{r.reason}")
    return EXIT_OK


def cmd_redeliver(args) -> int:
    from driftd.monitor.service.commands import RedeliverArgs

    _, result = _store_command(args, "redeliver", RedeliverArgs(
        args.delivery, args.dead, args.by or getpass.getuser()))
    if not result:
        print("no dead deliveries")
    for d in result:
        if d.queued:
            print(f"{d.delivery_id}: {d.event_type} for {d.model} to {d.sink} queued again "
                  f"(was {d.previous_status})")
        else:
            print(f"{d.delivery_id}: already pending")
    return EXIT_OK


def _threshold(value: str) -> tuple[str, float]:
    """`--threshold METHOD=VALUE` → (method, value)."""
    method, sep, number = value.partition("=")
    try:
        if not sep or not method.strip():
            raise ValueError
        return method.strip(), float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected METHOD=VALUE, e.g. psi=0.25 or ks=0.01") from None


def _fail_on(value: str) -> tuple[str, ...]:
    from driftd.detectors.explain import parse_fail_on

    try:
        return parse_fail_on(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_check(args) -> int:
    from driftd.api import compare
    from driftd.detectors.check import CONVENTIONAL_LABEL, CONVENTIONAL_PREDICTION

    categorical = [c for c in (args.categorical or "").split(",") if c]
    stattest = [m for m in (args.stattest or "").split(",") if m] if args.stattest else None
    for path in (args.reference, args.current):
        if not Path(path).exists():
            raise CliError(f"{path}: file not found")
    if stattest is not None and not stattest:
        raise CliError("--stattest names no method")
    if (args.config is None) != (args.model is None):
        raise CliError("--config and --model go together: the detection policy of that model")
    prediction = (CONVENTIONAL_PREDICTION if args.prediction_column is None
                  else args.prediction_column)
    label = CONVENTIONAL_LABEL if args.label_column is None else args.label_column
    try:
        comparison = compare(args.reference, args.current, categorical=categorical,
                             prediction=prediction, label=label, stattest=stattest,
                             fail_on=args.fail_on, drift_share=args.drift_share,
                             thresholds=dict(args.threshold or ()),
                             config=args.config, model=args.model, memory_mb=args.memory_mb,
                             segment=args.segment, segment_max_values=args.segment_max_values,
                             segment_min_rows=args.segment_min_rows)
    except (ValueError, KeyError) as exc:
        from driftd.monitor.config import ConfigError

        if isinstance(exc, ConfigError):
            raise
        raise CliError(str(exc)) from exc
    result = comparison.result
    if args.report:
        from driftd.monitor.store.references import file_sha256
        from driftd.reports.lineage import CheckInput
        from driftd.reports.render import render_check

        inputs = tuple(
            CheckInput(role=role, name=Path(path).name, path=str(Path(path).resolve()),
                       sha256=file_sha256(Path(path)), rows=rows)
            for role, path, rows in (("reference", args.reference, result.rows_reference),
                                     ("current", args.current, result.rows_current)))
        html = render_check(result, reference_name=Path(args.reference).name,
                            current_name=Path(args.current).name,
                            generated_at=datetime.now(UTC), inputs=inputs,
                            fail_on=comparison.fail_on)
        _write_text(Path(args.report), html)
    if args.format == "json":
        print(comparison.to_json())
    else:
        print(comparison.to_table())
    return comparison.exit_code


def cmd_compact(args) -> int:
    from driftd.monitor.store.retention import apply_retention, compact

    loaded = _load(args.config)
    store = _store_alone(args, "`driftd compact`").store
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
    "check": "exit codes: 0 passed (no drift), 1 failed: drift, schema or quality per "
             "--fail-on (the reasons are printed), 2 error or nothing to compare (no rows, "
             "no common column)",
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
                    help="the model's output column (prediction drift, calibration); default: "
                         "the column named prediction, if any ('' for none, so a feature may "
                         "be called prediction)")
    sp.add_argument("--label-column", metavar="COL",
                    help="the ground-truth column (calibration, performance); default: the "
                         "column named label, if any and there is a prediction")
    sp.add_argument("--stattest", metavar="M1,M2",
                    help="run exactly these methods on every column they apply to: ks, psi, "
                         "chisquare, jensenshannon, wasserstein (default: an automatic choice "
                         "per column, docs/detectors.md)")
    sp.add_argument("--fail-on", type=_fail_on, default=None, metavar="drift,schema,quality",
                    help="what makes the exit code 1 (default: all three): drift (the dataset "
                         "or the model drifted, or a feature past its strong effect), schema "
                         "(missing, unexpected or retyped columns), quality (missing-rate rise, "
                         "unseen categories, values out of range)")
    sp.add_argument("--drift-share", type=float, metavar="X",
                    help="the dataset drifts when at least this share of features drift "
                         "(default 0.5, or the --model's)")
    sp.add_argument("--threshold", type=_threshold, action="append", metavar="METHOD=VALUE",
                    help="a method's threshold, e.g. psi=0.25 or ks=0.01 (repeatable)")
    sp.add_argument("--config", metavar="FILE",
                    help="a driftd config file: with --model, use that model's detection "
                         "policy (only its models: section is read)")
    sp.add_argument("--model", metavar="M", help="the model whose policy --config gives")
    sp.add_argument("--segment", metavar="COL",
                    help="also compare per value of this column (a column of both files): the "
                         "reference's most frequent values, the rest as `other`")
    sp.add_argument("--segment-max-values", type=int, default=10, metavar="N",
                    help="segments named per column; the rest pooled as `other` (default 10)")
    sp.add_argument("--segment-min-rows", type=int, default=100, metavar="N",
                    help="fewer rows in a segment (current or reference): reported as "
                         "insufficient, not scored (default 100)")
    sp.add_argument("--format", choices=("table", "json"), default="table",
                    help="table for people, json for pipelines (default: table)")
    sp.add_argument("--report", metavar="OUT.html",
                    help="also write a self-contained HTML report here")
    sp.add_argument("--memory-mb", type=_memory_mb, default=256, metavar="N",
                    help="MiB of the current file's columns held at once; a larger column is "
                         "read in value ranges, never whole (default: 256; the reference's "
                         "profile comes on top)")

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
    ra.add_argument("--version", dest="model_version", metavar="MODEL_VERSION",
                    help="the model version (events' model_version) this reference is for; "
                         "without it: the model's default reference")

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
    time_range_args(sp, "first event time included (RFC 3339, a date, or epoch ms)",
                    "event time up to which rows are exported (exclusive)")
    sp.add_argument("--out", required=True, metavar="DIR",
                    help="directory for the Parquet files and manifest.json")

    sp = add("compare-versions", cmd_compare_versions,
             "champion vs challenger: two model versions on the same traffic period",
             "driftd compare-versions --config driftd.yaml --model credit-risk --champion v12 "
             "--challenger v13 --report versions.html")
    config_arg(sp)
    model_arg(sp)
    sp.add_argument("--champion", required=True, metavar="VERSION",
                    help="the model version in service (events' model_version)")
    sp.add_argument("--challenger", required=True, metavar="VERSION",
                    help="the model version it is compared with")
    time_range_args(sp, "first event time compared (default: when both versions served)",
                    "event time up to which events are compared (exclusive)")
    sp.add_argument("--format", choices=("table", "json"), default="table",
                    help="output format (default: table)")
    sp.add_argument("--report", metavar="OUT.html",
                    help="also write the self-contained HTML report here")

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
    sp.add_argument("--segment", metavar="COL[=VALUE]",
                    help="also the segments' rows: of a segment column, one segment "
                         "(region=APAC), or * for all")
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

    sp = add("redeliver", cmd_redeliver,
             "send deliveries again under their delivery id (dead ones, or one by id)",
             "driftd redeliver --config driftd.yaml --dead")
    config_arg(sp)
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--delivery", metavar="ID",
                       help="one delivery (its id from driftd alerts), dead or sent")
    which.add_argument("--dead", action="store_true", help="every dead delivery")
    sp.add_argument("--by", help="who asked (default: the current user; kept with the alert "
                                 "history)")

    sp = add("compact", cmd_compact,
             "apply retention and rewrite the store file smaller (daemon stopped)",
             "driftd compact --config driftd.yaml")
    config_arg(sp)

    sp = add("verify", cmd_verify,
             "read every block of the store file, checking its checksums (daemon stopped, or "
             "a copy)",
             "driftd verify --config driftd.yaml")
    config_arg(sp)
    sp.add_argument("--format", choices=("table", "json"), default="table",
                    help="output format (default: table)")

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


def entry() -> None:
    """The `driftd` command: `main()`, then leave without the interpreter's teardown.

    By the time `main()` returns, every command has finished its work: the daemon has stopped
    consuming, stored and committed its last batch, stopped its workers and closed the store.
    What is left is interpreter teardown, where C++ destructors of libraries that keep native
    threads could run while a daemon thread (a waitress worker answering a last scrape, a
    sink's delivery lane past its grace period) is still inside native code; under load that
    raced into `std::terminate` ("terminate called without an active exception", exit -6)
    about once in ten stops. So the streams are flushed and logging shut down here, and the
    process exits with `main()`'s code directly.
    """
    import logging
    import os

    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
    finally:
        os._exit(code)


if __name__ == "__main__":
    entry()
