"""driftd configuration: YAML → frozen pydantic v2 models, validated in stages.

Stage 1 is the schema (`extra="forbid"`, every error named by path and line); stage 2 checks
references between components (alert sinks exist, reference files exist); the environment
(broker reachable, tokens valid) is checked only when asked, by `driftd run`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from driftd.detectors.policy import DetectionPolicy
from driftd.monitor.yamlsource import SourceMap, YamlError, interpolate_env, load_yaml
from driftd.sinks.redaction import MASK, is_secret_name, redact
from driftd.sinks.registry import SinkConfig
from driftd.sinks.templates import TemplateProblem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MEMORY_SIZE = r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"  # e.g. 2GB, 1.5GiB


class LakeConfig(_Strict):
    """The shared store for N replicas (monitor/store/lake.py): a DuckLake whose catalog is a
    PostgreSQL database, which also holds the coordination (leases, alert state, outbox)."""

    catalog: str = Field(min_length=1)  # libpq: "host=… dbname=… user=… password=${PGPASSWORD}"
    data_path: str = Field(min_length=1)  # a directory every replica mounts, or s3://bucket/prefix
    # this replica's name in leases, outbox claims and the `replica` metric label
    # (default: the host name, which is the pod name on Kubernetes)
    replica: str | None = Field(default=None, min_length=1, max_length=128)
    # how often one replica (holding the maintenance lease) applies retention and compacts
    # the lake's data files (DuckLake's merge_adjacent_files, expire_snapshots, cleanup)
    maintenance_interval_seconds: float = Field(default=3600, gt=0)
    # snapshots older than this are expired by maintenance (time travel reaches this far back)
    snapshot_retention_seconds: float = Field(default=86400, ge=0)


class StoreConfig(_Strict):
    path: str = "driftd.duckdb"
    # store.lake replaces store.path: a shared DuckLake for replicas in one consumer group
    lake: LakeConfig | None = None
    retention_days: float | None = Field(default=None, gt=0)
    quarantine_retention_days: float | None = Field(default=30, gt=0)
    label_pending_days: float = Field(default=14, gt=0)
    # DuckDB's own limits (default: 80 % of the machine's RAM, every core): set them to the
    # container's, or the kernel's OOM killer decides instead of DuckDB spilling to disk
    memory_limit: str | None = Field(default=None, pattern=MEMORY_SIZE)
    # for window loads, exports and retention; the ingest's appends run on one (Store.parallel)
    threads: int | None = Field(default=None, ge=1)
    # memory the detector pass may hold for window columns outside DuckDB (sorted values in
    # flight; reference profiles come on top): whole columns while they fit, on as many
    # threads as fit, else each column is read in ascending value ranges — a larger window
    # takes more passes over its rows, never more memory (monitor/store/window_stats.py)
    window_memory_mb: int = Field(default=256, ge=16)

    @property
    def window_memory_bytes(self) -> int:
        return self.window_memory_mb << 20
    # how much write-ahead log DuckDB gathers before a commit folds it into the file
    # (compressing it). DuckDB's 16MB means a checkpoint every ~50k ingested events; at
    # 128MB the ingest spends about a quarter less CPU per event (bench/README.md). The WAL
    # is replayed after a crash; uncheckpointed rows stay in DuckDB's buffer pool meanwhile.
    checkpoint_threshold: str | None = Field(default="128MB", pattern=MEMORY_SIZE)

    @model_validator(mode="after")
    def _path_or_lake(self) -> StoreConfig:
        if self.lake is not None and "path" in self.model_fields_set:
            raise ValueError("store.path and store.lake are exclusive: the lake replaces the "
                             "file")
        return self


class KafkaConfig(_Strict):
    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """`consumer` options that hold credentials (sasl_plain_password, ssl_password, …)
        are shown masked."""
        for name, value in super().__repr_args__():
            if name == "consumer" and isinstance(value, Mapping):
                value = {k: MASK if is_secret_name(k) else v for k, v in value.items()}
            yield name, value

    bootstrap_servers: str | list[str]
    group_id: str = "driftd"
    events_topic: str = "events"
    labels_topic: str = "labels"
    consumer: dict[str, Any] = Field(default_factory=dict)
    poll_timeout_ms: int = Field(default=500, ge=1)
    max_poll_records: int = Field(default=5000, ge=1)
    # polls are gathered into one store transaction (and one Kafka commit) of up to this many
    # records, or this old: DuckDB appends cost far less per row in large batches
    flush_max_records: int = Field(default=50_000, ge=1)
    flush_interval_ms: int = Field(default=1000, ge=0)
    # N ≥ 1: each poll's record batches are parsed and decoded (msgspec) in one of N child
    # processes while the next polls are fetched; 0: on the store thread, sharing the fetch's
    # GIL. Unset: 1 when this process may use two or more CPUs.
    decode_workers: int | None = Field(default=None, ge=0, le=16)


class IngestConfig(_Strict):
    max_message_bytes: int = Field(default=1_048_576, ge=64)
    max_future_skew_seconds: float = Field(default=3600, ge=0)
    max_age_days: float = Field(default=3650, gt=0)
    max_id_length: int = Field(default=256, ge=1)
    # the most of a quarantined message's bytes the store keeps (its size and sha256 are kept
    # whole): a flood of oversized messages must not fill the disk
    quarantine_max_bytes: int = Field(default=65_536, ge=0)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    # what clients may hold (monitor/service/http.py): open connections, an idle connection's
    # life, the time a request may take to arrive whole, and the threads that answer
    max_connections: int = Field(default=100, ge=1, le=10_000)
    idle_timeout_seconds: int = Field(default=30, ge=1)
    request_timeout_seconds: float = Field(default=10, gt=0)
    threads: int = Field(default=4, ge=1, le=64)


class ReportsConfig(_Strict):
    dir: str = "reports"
    base_url: str = "http://127.0.0.1:9108/reports"
    evidently: bool = False


class ExportConfig(_Strict):
    dir: str = "exports"
    lookback_seconds: int | None = Field(default=None, gt=0)


class LogConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class RetrainPolicy(_Strict):
    after_consecutive_critical: int = Field(default=3, ge=1)
    on_performance_drop: bool = True


class AlertConfig(_Strict):
    sinks: list[str] = Field(default_factory=list)
    consecutive: int = Field(default=1, ge=1)
    cooldown_seconds: float = Field(default=3600, ge=0)
    resolve: bool = True
    critical_share: float = Field(default=0.5, gt=0, le=1)
    retrain: RetrainPolicy | None = Field(default_factory=RetrainPolicy)
    rationale: str = ""
    action: str = ""


FeatureKind = Literal["numeric", "categorical"]


class ModelConfig(_Strict):
    task: Literal["binary_classification", "regression"] = "binary_classification"
    reference: str
    # a model version's own reference (`v13: data/reference-v13.parquet`): that version's
    # events are scored against it, the other versions' against `reference`
    # (monitor/service/version_slices.py)
    references: dict[str, str] = Field(default_factory=dict)
    features: dict[str, FeatureKind]
    prediction_column: str = "prediction"
    label_column: str = "label"
    window_seconds: int = Field(default=3600, gt=0)
    window_align: Literal["none", "utc"] = "none"
    allowed_lateness_seconds: int = Field(default=0, ge=0)
    # labels arriving for a closed (utc-aligned) window that ended less than this long ago
    # score it again, so its calibration and performance count; 0: labels never re-score
    label_lateness_seconds: int = Field(default=7 * 86_400, ge=0)
    min_rows: int = Field(default=500, ge=1)
    schedule_seconds: int = Field(default=300, gt=0)
    alert: AlertConfig = Field(default_factory=AlertConfig)
    detection: DetectionPolicy = Field(default_factory=DetectionPolicy)
    # segment drift (docs/detectors.md "Segments"): every detector also runs per value of each
    # column (a feature or an extra event field) for its segment_max_values most frequent
    # reference values, the rest pooled as `other`; a segment with fewer than
    # segment_min_rows rows in the window or its reference slice is reported, not scored
    segments: list[str] = Field(default_factory=list)
    segment_max_values: int = Field(default=10, ge=1, le=100)
    segment_min_rows: int = Field(default=100, ge=1)

    @field_validator("segments")
    @classmethod
    def _distinct_segments(cls, value: list[str]) -> list[str]:
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"segment column(s) listed twice: {', '.join(repeated)}")
        if any(not c for c in value):
            raise ValueError("a segment column needs a name")
        return value

    @field_validator("features")
    @classmethod
    def _some_features(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("at least one feature is required")
        return value

    @model_validator(mode="after")
    def _outputs_are_not_features(self) -> ModelConfig:
        """A feature may have any name, `prediction` and `label` included; but a reference
        column named explicitly as the prediction or label cannot also be a feature."""
        for key in ("prediction_column", "label_column"):
            name = getattr(self, key)
            if key in self.model_fields_set and name in self.features:
                raise ValueError(f"{key} {name!r} is also a configured feature; one reference "
                                 "column cannot be both")
        for name in self.segments:
            if name not in self.features and name in (self.prediction_column, self.label_column):
                raise ValueError(f"segments: {name!r} is the model's prediction or label "
                                 "column; segment by a feature or another event field")
        if self.prediction_column == self.label_column:
            raise ValueError(f"prediction_column and label_column are both "
                             f"{self.prediction_column!r}")
        return self


class Config(_Strict):
    store: StoreConfig = Field(default_factory=StoreConfig)
    kafka: KafkaConfig | None = None
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    models: dict[str, ModelConfig]
    sinks: dict[str, SinkConfig] = Field(default_factory=dict)

    def model_fingerprint(self, model: str) -> str:
        """Stable id of a model's effective configuration (lineage, labels)."""
        payload = self.models[model].model_dump(mode="json")
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path}{where}: {self.message}" if self.path else f"{self.message}{where}"


class ConfigError(ValueError):
    """Every problem found in a config file, each with its path and line."""

    def __init__(self, file: str, issues: list[ConfigIssue]):
        self.file = file
        self.issues = issues
        super().__init__(f"{file}: " + "; ".join(str(i) for i in issues))

    def render(self) -> str:
        lines = [f"{self.file}: {len(self.issues)} error(s)"]
        lines += [f"  {issue}" for issue in self.issues]
        return "\n".join(lines)


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


def _issue_from_pydantic(err: Mapping[str, Any], source: SourceMap) -> ConfigIssue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
    problem = (err.get("ctx") or {}).get("error")
    if isinstance(problem, TemplateProblem):  # names the option below loc, and a template line
        loc = (*loc, *problem.subpath)
        line = (source.line_in_value(loc, problem.template_line)
                if problem.template_line is not None else None)
        return ConfigIssue(_dotted(loc), problem.message, line or source.line_of(loc))
    kind = err["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "union_tag_invalid":
        message = f"unknown type {err.get('input', {}).get('type')!r}; {err['msg']}"
    else:
        message = err["msg"]
        secret = any(isinstance(p, str) and (p in _SECRET_KEYS or is_secret_name(p))
                     for p in loc)
        if "input" in err and not isinstance(err["input"], (dict, list)) and not secret:
            message += f" (got {redact(repr(err['input']))})"  # a URL's token, user:password
    return ConfigIssue(_dotted(loc), message, source.line_of(loc))


# values under these keys are never echoed back in an error message
_SECRET_KEYS = frozenset({"token", "webhook_url", "secret", "headers", "sasl_plain_password",
                          "ssl_password", "basic_auth", "body_template", "path_template",
                          "catalog"})

# pydantic inserts the discriminator tag into error paths; users never wrote it.
_UNION_TAGS = {"webhook", "slack"}


# Options driftd sets itself: overriding them would break commit-after-durable or decoding.
RESERVED_CONSUMER_OPTIONS = frozenset({"enable_auto_commit", "group_id", "bootstrap_servers",
                                       "value_deserializer", "key_deserializer"})


def _check_consumer_options(config: Config, source: SourceMap) -> list[ConfigIssue]:
    """`kafka.consumer` keys must be KafkaConsumer options (a typo is an error, not a no-op)."""
    if config.kafka is None:
        return []
    from kafka import KafkaConsumer

    issues = []
    for key in config.kafka.consumer:
        path = ("kafka", "consumer", key)
        if key in RESERVED_CONSUMER_OPTIONS:
            issues.append(ConfigIssue(_dotted(path), "set by driftd; remove it (offsets are "
                                      "committed only after rows are durable)",
                                      source.line_of(path)))
        elif key not in KafkaConsumer.DEFAULT_CONFIG:
            issues.append(ConfigIssue(_dotted(path), "unknown kafka-python consumer option",
                                      source.line_of(path)))
    return issues


def _check_optional_extras(config: Config, source: SourceMap) -> list[ConfigIssue]:
    """Options that need an optional extra say how to install it."""
    issues = []
    if config.store.lake is not None:
        from driftd.monitor.store.lake_extensions import INSTALL_HINT, lake_available

        if not lake_available():
            path = ("store", "lake")
            issues.append(ConfigIssue(_dotted(path), "needs the DuckDB ducklake and postgres "
                                      f"extensions and psycopg: {INSTALL_HINT}",
                                      source.line_of(path)))
    if not config.reports.evidently:
        return issues
    from driftd.reports.evidently_appendix import EvidentlyMissing, evidently_available

    if evidently_available():
        return issues
    path = ("reports", "evidently")
    return [*issues, ConfigIssue(_dotted(path), str(EvidentlyMissing()), source.line_of(path))]


def _check_references(config: Config, base: Path, source: SourceMap) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = _check_consumer_options(config, source)
    issues += _check_optional_extras(config, source)
    for name, model in config.models.items():
        for i, sink in enumerate(model.alert.sinks):
            if sink not in config.sinks:
                path = ("models", name, "alert", "sinks", i)
                known = ", ".join(sorted(config.sinks)) or "none configured"
                issues.append(
                    ConfigIssue(_dotted(path), f"unknown sink {sink!r} (known: {known})",
                                source.line_of(path))
                )
        ref = resolve_path(base, model.reference)
        if not ref.exists():
            path = ("models", name, "reference")
            issues.append(ConfigIssue(_dotted(path), f"reference file not found: {ref}",
                                      source.line_of(path)))
        for version, file in model.references.items():
            ref = resolve_path(base, file)
            if not ref.exists():
                path = ("models", name, "references", version)
                issues.append(ConfigIssue(_dotted(path), f"reference file of model version "
                                          f"{version!r} not found: {ref}", source.line_of(path)))
    return issues


def config_secrets(config: Config) -> list[str]:
    """Every credential value in the config, to be masked wherever it might surface (log
    lines): SecretStr fields (tokens, webhook secrets, header values), Kafka consumer options
    with credential names, and passwords and query values in URLs."""
    found: list[str] = []

    def walk(value: Any, name: str = "") -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for field in type(value).model_fields:
                walk(getattr(value, field), field)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(item, str) and is_secret_name(str(key)):
                    found.append(item)
                else:
                    walk(item, str(key))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, name)
        elif isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            if parts.password:
                found.append(parts.password)
            found.extend(v for _, v in parse_qsl(parts.query) if v)

    walk(config)
    return found


def resolve_path(base: Path, value: str) -> Path:
    """Relative paths in a config are relative to the config file's directory."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def parse_config(
    text: str, file: str = "<config>", *, env: Mapping[str, str] | None = None,
    base_dir: Path | None = None, check_files: bool = True,
) -> Config:
    """Validate config text; raise ConfigError listing every issue with its path and line."""
    try:
        data, source = load_yaml(text, file)
    except YamlError as exc:
        raise ConfigError(file, [ConfigIssue("", str(exc).split(": ", 1)[-1])]) from exc
    data, env_errors = interpolate_env(data, env)
    issues = [
        ConfigIssue(_dotted(e.path), f"environment variable {e.variable} is not set",
                    source.line_of(e.path))
        for e in env_errors
    ]
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        issues += [_issue_from_pydantic(err, source) for err in exc.errors()]
        raise ConfigError(file, issues) from None
    if check_files:
        issues += _check_references(config, base_dir or Path.cwd(), source)
    if issues:
        raise ConfigError(file, issues)
    return config


def check_environment(config: Config) -> list[ConfigIssue]:
    """Stage 3, only when asked (`validate-config` without --no-environment): the shared
    lake's catalog answers and its data path takes a file."""
    lake = config.store.lake
    if lake is None:
        return []
    from driftd.monitor.store.lake import check_lake

    return [ConfigIssue(f"store.lake.{key}", problem) for key, problem in check_lake(lake)]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where it came from (relative paths resolve against `base_dir`)."""

    config: Config
    path: Path
    base_dir: Path

    def resolve(self, value: str) -> Path:
        return resolve_path(self.base_dir, value)

    @property
    def store_path(self) -> Path:
        return self.resolve(self.config.store.path)

    @property
    def reports_dir(self) -> Path:
        return self.resolve(self.config.reports.dir)

    @property
    def export_dir(self) -> Path:
        return self.resolve(self.config.export.dir)


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        issue = ConfigIssue("", f"cannot read file: {exc.strerror}")
        raise ConfigError(str(path), [issue]) from exc
    base = path.resolve().parent
    config = parse_config(text, str(path), env=env, base_dir=base)
    return LoadedConfig(config, path.resolve(), base)


def load_model_config(path: str | Path, model: str) -> ModelConfig:
    """One model's section of a config file, validated on its own (`driftd check --config`).

    The rest of the file — sinks and their secrets, Kafka, reference files — need not be valid
    or present where the check runs: only `models.<model>` is interpolated and validated, with
    errors named by path and line like `load_config`'s.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data, source = load_yaml(text, str(path))
    except OSError as exc:
        raise ConfigError(str(path), [ConfigIssue("", f"cannot read file: {exc.strerror}")]) \
            from exc
    except YamlError as exc:
        raise ConfigError(str(path), [ConfigIssue("", str(exc).split(": ", 1)[-1])]) from exc
    models = data.get("models")
    if not isinstance(models, Mapping) or model not in models:
        known = ", ".join(sorted(map(str, models))) if isinstance(models, Mapping) else "none"
        issue = ConfigIssue("models", f"no model {model!r} (configured: {known})",
                            source.line_of(("models",)))
        raise ConfigError(str(path), [issue])
    section, env_errors = interpolate_env(models[model], None, ("models", model))
    issues = [ConfigIssue(_dotted(e.path), f"environment variable {e.variable} is not set",
                          source.line_of(e.path)) for e in env_errors]
    try:
        config = ModelConfig.model_validate(section)
    except ValidationError as exc:
        for err in exc.errors():
            err = {**err, "loc": ("models", model, *err["loc"])}
            issues.append(_issue_from_pydantic(err, source))
        raise ConfigError(str(path), issues) from None
    if issues:
        raise ConfigError(str(path), issues)
    return config
