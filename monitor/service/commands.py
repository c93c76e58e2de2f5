"""The store commands of `driftd` — alerts, silence, history, quarantine, report, export,
backfill, reference add, replay, redeliver — each written once.

A command is a function of an `App` and a frozen argument dataclass that returns a frozen
result. The CLI runs it in its own process when it can open the store, and otherwise asks the
daemon holding the store to run it through the admin API (monitor/service/admin.py). Both sides
turn arguments and results into JSON with the same adapters (`to_json` / `from_json`), so the
CLI prints the same thing and exits the same way whichever process did the work.

Paths in arguments are absolute: the daemon and the CLI share the machine (that is how the
CLI found the store locked), not necessarily a working directory.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter

from driftd.detectors.versions import VersionComparison
from driftd.monitor.service.outbox import DeliveryRow, Redelivery
from driftd.monitor.service.reporting import RenderedRun

if TYPE_CHECKING:
    from driftd.monitor.service.app import App


class CommandError(ValueError):
    """A user-facing failure of a command (unknown model, no such run): one line, exit 2."""


# --- arguments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertsArgs:
    limit: int = 200


@dataclass(frozen=True)
class SilenceArgs:
    model: str
    seconds: float
    reason: str
    by: str


@dataclass(frozen=True)
class HistoryArgs:
    model: str
    feature: str | None = None
    segment: str | None = None  # a segment column, column=value or "*": its rows too


@dataclass(frozen=True)
class QuarantineArgs:
    limit: int = 1000


@dataclass(frozen=True)
class ReportArgs:
    run: str | None = None
    evidently: bool = False


@dataclass(frozen=True)
class ExportArgs:
    model: str
    out: str
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class BackfillArgs:
    model: str
    since: datetime
    until: datetime
    progress: bool = False  # a progress bar on this process's stderr (never through the API)


@dataclass(frozen=True)
class ReferenceAddArgs:
    model: str
    file: str
    model_version: str | None = None  # `--version`: that model version's own reference


@dataclass(frozen=True)
class ReplayArgs:
    file: str
    kind: Literal["events", "labels"] = "events"


@dataclass(frozen=True)
class CompareVersionsArgs:
    model: str
    champion: str
    challenger: str
    since: datetime | None = None  # default: the period both versions served
    until: datetime | None = None
    report: bool = False  # also render the HTML report


@dataclass(frozen=True)
class RedeliverArgs:
    delivery: str | None = None
    dead: bool = False
    by: str = ""


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRow:
    model: str
    status: str
    severity: str | None
    opened_at: datetime | None
    last_seen: datetime | None
    resolved_at: datetime | None
    silenced_until: datetime | None
    silence_reason: str | None


@dataclass(frozen=True)
class AlertsResult:
    alerts: list[AlertRow]
    deliveries: list[DeliveryRow]

    @property
    def dead(self) -> int:
        return sum(d.status == "dead" for d in self.deliveries)


@dataclass(frozen=True)
class SilenceResult:
    model: str
    silenced_until: datetime
    silenced_by: str
    reason: str


@dataclass(frozen=True)
class HistoryRow:
    window_start: str
    window_end: str
    rows: int
    feature: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool
    status: str
    run_id: str
    # feature, prediction, calibration, performance, performance_estimated or multivariate
    role: str = "feature"
    reference: float | None = None  # the reference's value (calibration, performance,
    # multivariate: the reference chunks' mean error)
    model_version: str | None = None  # the run's (its version slice's, or the most served)
    reference_version: int | None = None  # the reference it was scored against
    reference_sha256: str | None = None
    reference_model_version: str | None = None  # None: the model's default reference
    # performance_estimated: the band around the estimate and, once labels are in, the
    # realized value; calibration and performance too: how the threshold was derived
    lower: float | None = None
    upper: float | None = None
    realized: float | None = None
    threshold_source: str | None = None
    segment: str | None = None  # "column=value" of a segment's row; None: the whole window
    lower_threshold: float | None = None  # multivariate: the band's lower end
    top_features: tuple[str, ...] = ()  # multivariate: largest rise over the reference first


@dataclass(frozen=True)
class QuarantinedMessage:
    received_at: datetime
    source: str
    where: str
    topic: str | None
    partition: int | None
    offset: int | None
    line: int | None
    model: str | None
    reason_code: str
    reason: str
    first_bytes: str
    bytes: int | None = None  # the message's whole size (the store keeps a capped prefix)
    sha256: str | None = None  # of the whole message


@dataclass(frozen=True)
class ExportResult:
    rows: int
    labelled_rows: int
    time_range: dict[str, str | None]


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill did, counted honestly (`runner.PassSummary`: a skipped or failed window
    is not a window evaluated)."""

    windows: int
    evaluated: int
    drift: int
    warnings: int
    skipped: int
    errors: int
    first_skip: str | None = None
    first_error: str | None = None

    @property
    def text(self) -> str:
        from driftd.monitor.service.runner import PassSummary

        return PassSummary(**dataclasses.asdict(self)).text


@dataclass(frozen=True)
class ReferenceResult:
    model: str
    version: int
    sha256: str
    rows: int
    schema: dict[str, str]
    status: str
    model_version: str | None = None  # the model version it is the reference of
    source: str = "manual"


@dataclass(frozen=True)
class CompareVersionsResult:
    comparison: VersionComparison
    html: str | None = None  # the champion/challenger report, when asked for


@dataclass(frozen=True)
class ReplayResult:
    lines: int
    stored: int
    labels: int
    duplicates: int
    quarantined: int


# --- the commands --------------------------------------------------------------------------


def _model(app: App, name: str) -> None:
    if name not in app.config.models:
        known = ", ".join(sorted(app.config.models))
        raise CommandError(f"unknown model {name!r} (configured: {known})")


def _file(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise CommandError(f"{path}: file not found")
    return path


def alerts(app: App, args: AlertsArgs) -> AlertsResult:
    rows = [AlertRow(s.model, s.status, s.severity, s.opened_at, s.last_seen, s.resolved_at,
                     s.silenced_until, s.silence_reason) for s in app.alerts.states()]
    return AlertsResult(rows, app.outbox.deliveries(limit=args.limit))


def silence(app: App, args: SilenceArgs) -> SilenceResult:
    _model(app, args.model)
    until = app.clock() + timedelta(seconds=args.seconds)
    state = app.alerts.silence(args.model, until=until, reason=args.reason, by=args.by)
    return SilenceResult(args.model, state.silenced_until, state.silenced_by or args.by,
                         state.silence_reason or args.reason)


def history(app: App, args: HistoryArgs) -> list[HistoryRow]:
    from driftd.monitor.service.backfill import history_rows

    _model(app, args.model)
    return [HistoryRow(**row) for row in history_rows(app.store, args.model,
                                                        feature=args.feature,
                                                        segment=args.segment)]


def quarantine(app: App, args: QuarantineArgs) -> list[QuarantinedMessage]:
    out = []
    for r in app.store.quarantine_rows(limit=args.limit):
        where = (f"{r['topic']}[{r['partition']}]@{r['offset']}" if r["source"] == "kafka"
                 else f"{r['source']}:{r['line']}")
        raw = bytes(r["raw"] or b"")
        out.append(QuarantinedMessage(
            r["received_at"], r["source"], where, r["topic"], r["partition"], r["offset"],
            r["line"], r["model"], r["reason_code"], r["reason"],
            raw[:80].decode("utf-8", errors="backslashreplace"), r["raw_bytes"],
            r["raw_sha256"]))
    return out


def report(app: App, args: ReportArgs) -> RenderedRun:
    if args.evidently:
        from driftd.reports.evidently_appendix import EvidentlyMissing, evidently_available

        if not evidently_available():
            raise CommandError(str(EvidentlyMissing()))
    rendered = app.reports.render_run(args.run, evidently=True if args.evidently else None)
    if rendered is None:
        raise CommandError(f"no stored run {args.run!r} with results" if args.run
                           else "no stored runs with results yet")
    return rendered


def check_range(since: datetime | None, until: datetime | None) -> None:
    """`--since` must come before `--until` (an empty range is a mistake, not 0 rows)."""
    if since is not None and until is not None and since >= until:
        raise CommandError(f"--since ({since.isoformat()}Z) must be before --until "
                           f"({until.isoformat()}Z)")


def export(app: App, args: ExportArgs) -> ExportResult:
    from driftd.monitor.store.export import export_training_data

    check_range(args.since, args.until)
    _model(app, args.model)
    manifest = export_training_data(app.store, args.model, app.config.models[args.model],
                                    Path(args.out), since=args.since, until=args.until)
    return ExportResult(manifest["rows"], manifest["labelled_rows"], manifest["time_range"])


def backfill(app: App, args: BackfillArgs) -> BackfillResult:
    from driftd.monitor.service.backfill import backfill as run_backfill
    from driftd.monitor.service.runner import summarize

    check_range(args.since, args.until)
    _model(app, args.model)
    outcomes = run_backfill(app, args.model, args.since, args.until, progress=args.progress)
    return BackfillResult(**dataclasses.asdict(summarize(outcomes)))


def reference_add(app: App, args: ReferenceAddArgs) -> ReferenceResult:
    from driftd.monitor.store.references import register_reference

    _model(app, args.model)
    reg = register_reference(app.store, args.model, app.config.models[args.model],
                             Path(args.file), model_version=args.model_version,
                             source="manual")
    rec = reg.record
    return ReferenceResult(rec.model, rec.version, rec.sha256, rec.rows, dict(rec.schema),
                           "registered" if reg.created else "unchanged (same sha256)",
                           rec.model_version, rec.source)


def replay(app: App, args: ReplayArgs) -> ReplayResult:
    from driftd.monitor.ingest.replay import replay_file

    stats = replay_file(_file(args.file), args.kind, app.decoder, app.store, app.metrics)
    return ReplayResult(stats.lines, stats.stored, stats.labels, stats.duplicates,
                        stats.quarantined)


def compare_versions(app: App, args: CompareVersionsArgs) -> CompareVersionsResult:
    from driftd.monitor.service.champion import VersionsError
    from driftd.monitor.service.champion import compare_versions as compare
    from driftd.reports.versions import render_version_comparison

    check_range(args.since, args.until)
    _model(app, args.model)
    try:
        comparison, result = compare(app.store, args.model, app.config.models[args.model],
                                     args.champion, args.challenger, since=args.since,
                                     until=args.until)
    except VersionsError as exc:
        raise CommandError(str(exc)) from None
    html = (render_version_comparison(comparison, result,
                                      config_fingerprint=app.config.model_fingerprint(args.model))
            if args.report else None)
    return CompareVersionsResult(comparison, html)


def redeliver(app: App, args: RedeliverArgs) -> list[Redelivery]:
    if (args.delivery is None) == (not args.dead):
        raise CommandError("give --delivery ID or --dead")
    return app.outbox.redeliver(delivery_id=args.delivery, dead=args.dead, by=args.by)


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command: its argument and result types, what it does, and whether it writes (a
    write through the admin API needs the token)."""

    name: str
    args: type
    result: Any  # a type or a generic alias such as list[HistoryRow]
    run: Callable[[App, Any], Any]
    writes: bool

    @functools.cached_property
    def args_adapter(self) -> TypeAdapter:
        return TypeAdapter(self.args)

    @functools.cached_property
    def result_adapter(self) -> TypeAdapter:
        return TypeAdapter(self.result)


COMMANDS: Mapping[str, Command] = MappingProxyType({c.name: c for c in (
    Command("alerts", AlertsArgs, AlertsResult, alerts, writes=False),
    Command("history", HistoryArgs, list[HistoryRow], history, writes=False),
    Command("quarantine", QuarantineArgs, list[QuarantinedMessage], quarantine, writes=False),
    Command("report", ReportArgs, RenderedRun, report, writes=False),
    Command("silence", SilenceArgs, SilenceResult, silence, writes=True),
    Command("export", ExportArgs, ExportResult, export, writes=True),
    Command("backfill", BackfillArgs, BackfillResult, backfill, writes=True),
    Command("reference-add", ReferenceAddArgs, ReferenceResult, reference_add, writes=True),
    Command("replay", ReplayArgs, ReplayResult, replay, writes=True),
    Command("redeliver", RedeliverArgs, list[Redelivery], redeliver, writes=True),
    Command("compare-versions", CompareVersionsArgs, CompareVersionsResult, compare_versions,
            writes=False),
)})


def to_json(command: Command, value: Any, *, result: bool = True) -> Any:
    """A command's result (or arguments) as JSON-ready data: the one serialization both the
    local path and the admin API use."""
    adapter = command.result_adapter if result else command.args_adapter
    return adapter.dump_python(value, mode="json")


def from_json(command: Command, data: Any, *, result: bool = True) -> Any:
    """The typed result (or arguments) back from `to_json`'s data; pydantic.ValidationError
    names what does not fit."""
    adapter = command.result_adapter if result else command.args_adapter
    return adapter.validate_python(data)

