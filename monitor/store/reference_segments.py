"""The segment slices of a registered reference (`models.<m>.segments`).

Built with the reference's profile when it is registered and stored beside it
(`references.segment_profiles`), so a window only pays for its own rows. A reference
registered before its model had segments, or with other segment columns or another
`segment_max_values`, gets them built from its file on first use (the file must still have the
registered sha256), stored, and kept in memory.
"""

from __future__ import annotations

import logging
import threading

import polars as pl

from driftd.detectors.profile import ProfileVersionError
from driftd.detectors.segments import SegmentProfiles, build_segment_profiles
from driftd.monitor.config import ModelConfig
from driftd.monitor.store.duckdb_file import ReferenceRecord, Store
from driftd.monitor.store.references import (
    ReferenceError,
    model_outputs,
    reference_frame,
    registered_table,
)

log = logging.getLogger("driftd.references")


def build_reference_segments(raw: pl.DataFrame, model: ModelConfig,
                             source: str) -> SegmentProfiles:
    """Each segment column's reference slices, from the reference file as read."""
    missing = [c for c in model.segments if c not in raw.columns]
    if missing:
        raise ReferenceError(f"{source}: segment column(s) missing from the reference: "
                             f"{', '.join(missing)}")
    prediction, label = model_outputs(raw.columns, model)
    return build_segment_profiles(
        reference_frame(raw, model, source), {c: raw.get_column(c) for c in model.segments},
        model.features, prediction=prediction, label=label, task=model.task,
        max_values=model.segment_max_values)


class SegmentProfileCache:
    """Segment profiles by (model, version, segment columns, cap): read once, built if absent."""

    def __init__(self, store: Store):
        self._store = store
        self._cache: dict[tuple, SegmentProfiles] = {}
        self._lock = threading.Lock()

    def get(self, record: ReferenceRecord, model: ModelConfig) -> SegmentProfiles:
        key = (record.model, record.version, tuple(model.segments), model.segment_max_values)
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                found = self._load(record, model)
                self._cache[key] = found
            return found

    def _load(self, record: ReferenceRecord, model: ModelConfig) -> SegmentProfiles:
        blob = self._store.reference_segments(record.model, record.version)
        stored = None
        if blob is not None:
            try:
                stored = SegmentProfiles.from_bytes(blob)
            except (ValueError, ProfileVersionError):
                stored = None
        if stored is not None and stored.matches(model.segments, model.segment_max_values):
            return stored
        why = (f"{record.model!r} reference version {record.version} has no segment profiles "
               f"for segments {model.segments} (segment_max_values "
               f"{model.segment_max_values})")
        built = build_reference_segments(registered_table(record, why), model, record.path)
        self._store.set_reference_segments(record.model, record.version, built.to_bytes())
        log.info("built segment profiles", extra={"model": record.model,
                                                  "version": record.version,
                                                  "segments": list(model.segments)})
        return built
