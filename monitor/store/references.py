"""Registering a model's training reference: hash, rows, schema, version, profile.

A changed file is a new version, never a silent overwrite; the profile (bin edges, sorted
values, category counts) is built once here so every window only pays for its own rows. A
profile stored by a driftd with another profile layout is rebuilt from the reference file on
first use (`ProfileCache`), in memory.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import polars as pl

from driftd.detectors.check import read_table as read_check_table
from driftd.detectors.profile import (
    PROFILE_VERSION,
    ProfileVersionError,
    ReferenceProfile,
    build_profile,
)
from driftd.monitor.config import ModelConfig
from driftd.monitor.store.duckdb_file import ReferenceRecord, Store

log = logging.getLogger("driftd.references")


class ReferenceError(ValueError):
    """The reference file cannot be used for this model (missing columns, unreadable)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(path: Path) -> pl.DataFrame:
    """Read Parquet or CSV by extension, whole (reports; a profile reads `scan_table`)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        if suffix == ".csv":  # driftd check's reader: header names as the CSV quotes them
            return read_check_table(path)
        if suffix == ".tsv":
            return pl.read_csv(path, separator="\t", infer_schema_length=10000)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ReferenceError(f"{path}: cannot read: {exc}") from exc
    except ValueError as exc:  # read_check_table's, which names the file
        raise ReferenceError(str(exc)) from exc
    raise ReferenceError(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")


def scan_table(path: Path) -> pl.LazyFrame:
    """A reference file to read column by column: Parquet is scanned (only the columns a
    query names are read, row group by row group); CSV, which cannot be read by column, is
    read whole as `read_table` does."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq"):
        return read_table(path).lazy()
    try:
        frame = pl.scan_parquet(path)
        frame.collect_schema()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ReferenceError(f"{path}: cannot read: {exc}") from exc
    return frame


def model_outputs(
    frame_columns: Sequence[str], model: ModelConfig
) -> tuple[str | None, str | None]:
    """The reference's prediction and label columns, by the model's own names.

    A name that is also a configured feature is the feature (the config refuses that when the
    name was set explicitly); a label needs a prediction to score against.
    """
    def present(name: str) -> str | None:
        return name if name in frame_columns and name not in model.features else None

    prediction = present(model.prediction_column)
    label = present(model.label_column) if prediction is not None else None
    return prediction, label


Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def reference_frame(frame: Frame, model: ModelConfig, source: str) -> Frame:
    """Select and type the configured features, the prediction and the label, each under its
    own name (any name: a feature may be called `prediction`)."""
    schema = frame.collect_schema()
    missing = [f for f in model.features if f not in schema]
    if missing:
        raise ReferenceError(f"{source}: configured features missing from the reference: "
                             f"{', '.join(missing)}")
    exprs = []
    for name, kind in model.features.items():
        col = pl.col(name)
        if kind == "numeric":
            if not schema[name].is_numeric() and schema[name] != pl.Boolean:
                raise ReferenceError(f"{source}: feature {name!r} is configured numeric but the "
                                     f"reference column is {schema[name]}")
            exprs.append(col.cast(pl.Float64))
        elif schema[name].is_numeric() or schema[name] == pl.Boolean:
            exprs.append(col)  # compared by canonical text: 1.0 is the category "1"
        else:
            exprs.append(col.cast(pl.Utf8))
    for column in model_outputs(schema.names(), model):
        if column is not None:
            dtype = schema[column]
            exprs.append(pl.col(column).cast(pl.Float64 if dtype.is_numeric() or
                                             dtype == pl.Boolean else pl.Utf8))
    return frame.select(exprs)


def profile_reference(raw: pl.DataFrame | pl.LazyFrame, model: ModelConfig,
                      source: str, *, prefix_sums: bool = True) -> ReferenceProfile:
    """The reference profile of a model's reference file (`scan_table`: read column by column,
    so memory is the profile plus the columns being summarised). `prefix_sums=False` for a
    profile that is only stored."""
    frame = reference_frame(raw, model, source)
    prediction, label = model_outputs(raw.collect_schema().names(), model)
    try:
        return build_profile(frame, model.features, prediction=prediction, label=label,
                             task=model.task, prefix_sums=prefix_sums,
                             multivariate=model.detection.multivariate)
    except pl.exceptions.PolarsError as exc:  # a file that breaks while it is read
        raise ReferenceError(f"{source}: cannot read: {exc}") from exc


@dataclass(frozen=True)
class RegisteredReference:
    record: ReferenceRecord
    created: bool


def register_reference(store: Store, model_name: str, model: ModelConfig, path: Path, *,
                       model_version: str | None = None,
                       source: str = "config") -> RegisteredReference:
    """Hash and profile a reference file; store it as a new version if its content changed.

    The rule that keeps a registered reference from being silently replaced (docs/contract.md):
    the config's file (`source="config"`) is registered only when its sha256 differs from the
    newest reference the config's file registered in the same slot (model, model version), so
    a reference added by hand (`source="manual"`, `driftd reference add`) stays the newest —
    and the one used — until the config's file itself changes. A slot's newest reference is
    the one windows are scored against. `record` is that newest one.
    """
    if not path.exists():
        raise ReferenceError(f"{path}: reference file not found")
    sha = file_sha256(path)
    if source == "config":
        from driftd.monitor.store.model_versions import newest_from_config

        previous = newest_from_config(store, model_name, model_version)
        if previous is not None and previous.sha256 == sha:
            return RegisteredReference(store.reference(model_name, model_version=model_version),
                                       False)
    current = store.reference(model_name, model_version=model_version)
    if current is not None and current.sha256 == sha:
        return RegisteredReference(current, False)
    raw = scan_table(path)
    profile = profile_reference(raw, model, str(path), prefix_sums=False)
    schema = {name: str(dtype) for name, dtype in raw.collect_schema().items()}
    rows, blob = profile.rows, profile.to_bytes()
    del profile  # the bytes are what is stored: the arrays go before DuckDB takes its copy
    record, created = store.add_reference(model_name, sha, str(path), rows, schema, blob,
                                           model_version=model_version, source=source)
    if created and model.segments:  # stored with the reference, so no window pays for them
        from driftd.monitor.store.reference_segments import build_reference_segments

        # a profile per segment value: the reference is read whole for its slices
        store.set_reference_segments(model_name, record.version,
                                     build_reference_segments(read_table(path), model,
                                                              str(path)).to_bytes())
    if created:
        log.info("registered reference", extra={
            "model": model_name, "version": record.version, "sha256": sha, "rows": rows,
            "model_version": model_version, "source": source})
    return RegisteredReference(record, created)


class ProfileCache:
    """Profiles by (model, version): loaded from the store once, never recomputed per run.

    A stored profile with another `profile_version` (written by an older driftd) is rebuilt
    from the version's reference file when its model's config is given and the file still has
    the registered sha256; the rebuilt profile replaces the stored one, so it is rebuilt once.
    """

    def __init__(self, store: Store):
        self._store = store
        self._cache: dict[tuple[str, int], ReferenceProfile] = {}

    def get(self, record: ReferenceRecord, model: ModelConfig | None = None) -> ReferenceProfile:
        key = (record.model, record.version)
        profile = self._cache.get(key)
        if profile is None:
            blob = self._store.reference_profile(record.model, record.version)
            try:
                profile = ReferenceProfile.from_bytes(blob)
            except ProfileVersionError as exc:
                if model is None:
                    raise
                profile = rebuild_profile(record, model, exc.version)
                self._store.replace_reference_profile(record.model, record.version,
                                                      profile.to_bytes())
            if model is not None and _refit(profile, model):  # PCA settings changed
                try:
                    profile = rebuild_profile(record, model, "of other multivariate settings")
                    self._store.replace_reference_profile(record.model, record.version,
                                                          profile.to_bytes())
                except ReferenceError as exc:  # the stored fit is reported as not matching
                    log.warning("cannot refit the multivariate model", extra={
                        "model": record.model, "version": record.version, "error": str(exc)})
            self._cache[key] = profile
        return profile


def _refit(profile: ReferenceProfile, model: ModelConfig) -> bool:
    """Whether the stored PCA fit is not the one `detection.multivariate` asks for."""
    wanted = model.detection.multivariate
    fit = profile.multivariate
    if not wanted.enabled:
        return False
    return fit is None and len(model.features) >= 2 or (
        fit is not None and fit.settings != wanted.fit_settings())


def rebuild_profile(record: ReferenceRecord, model: ModelConfig,
                    stored_version: object) -> ReferenceProfile:
    """The profile of a registered reference version, built again from its file."""
    path = Path(record.path)
    why = (f"the stored profile of {record.model!r} reference version {record.version} has "
           f"profile_version {stored_version!r} and this driftd reads {PROFILE_VERSION}")
    profile = profile_reference(registered_table(record, why, lazy=True), model, str(path),
                                prefix_sums=False)
    log.warning("rebuilt reference profile from its file", extra={
        "model": record.model, "version": record.version, "stored_version": stored_version,
        "profile_version": PROFILE_VERSION})
    return profile


def registered_table(record: ReferenceRecord, why: str, *,
                     lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
    """A registered version's file, read again to rebuild what is stored of it (`lazy`: as a
    scan, read column by column); `why` says what needs it. The file must still have the
    registered sha256."""
    path = Path(record.path)
    if not path.exists():
        raise ReferenceError(f"{why}; its file {path} is gone, so it cannot be rebuilt")
    if file_sha256(path) != record.sha256:
        raise ReferenceError(f"{why}; its file {path} changed since it was registered, so it "
                             "cannot be rebuilt (register the file again)")
    return scan_table(path) if lazy else read_table(path)
