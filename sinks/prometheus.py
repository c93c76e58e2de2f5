"""Prometheus metrics (contract §5) on an explicit registry built per app.

Counters are incremented where things happen; drift gauges, outbox depth and last-run times
are computed at scrape time from the store by a custom collector, so they are never stale
and a restarted daemon reports what it stored before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class StoredState:
    """What the collector reads at scrape time (filled by a provider callable)."""

    findings: list[tuple[str, str, str, float | None, bool]] = field(default_factory=list)
    last_runs: list[tuple[str, float, float]] = field(default_factory=list)  # model, ts, end
    outbox_pending: list[tuple[str, int]] = field(default_factory=list)
    schedules: list[tuple[str, float]] = field(default_factory=list)
    models: list[ModelSignals] = field(default_factory=list)
    segments: list[SegmentSignal] = field(default_factory=list)


@dataclass(frozen=True)
class SegmentSignal:
    """One row of a segment of a model's newest scored window: its verdict (`feature` None:
    drifted 0/1, share drifted, rows) or a feature × method finding in it."""

    model: str
    segment: str  # "column=value" of a reference value within the cap, or "column=other"
    feature: str | None
    method: str | None
    statistic: float | None
    drifted: bool
    rows: int | None = None


@dataclass(frozen=True)
class ModelSignals:
    """A model's verdict as a whole: the newest window's, and the newest labelled one's."""

    model: str
    drifted: bool
    share_drifted: float
    calibration_ece: float | None = None
    performance: dict[str, float] = field(default_factory=dict)  # metric -> realized value
    # metric -> (estimate, lower, upper) of the newest window with an estimate (no labels needed)
    estimated: dict[str, tuple[float, float | None, float | None]] = field(default_factory=dict)
    # the newest window's PCA reconstruction error and its band (upper, lower; None: none)
    multivariate: tuple[float, float | None, float | None] | None = None


class StoredStateCollector(Collector):
    def __init__(self, provider: Callable[[], StoredState]):
        self._provider = provider

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        state = self._provider()
        stat = GaugeMetricFamily(
            "driftd_drift_statistic",
            "Latest drift statistic per model, feature and method",
            labels=["model", "feature", "method"],
        )
        detected = GaugeMetricFamily(
            "driftd_drift_detected",
            "1 when the latest run found drift for the feature/method",
            labels=["model", "feature", "method"],
        )
        for model, feature, method, value, drifted in state.findings:
            if value is not None:
                stat.add_metric([model, feature, method], float(value))
            detected.add_metric([model, feature, method], 1.0 if drifted else 0.0)
        last = GaugeMetricFamily(
            "driftd_last_run_timestamp_seconds",
            "Unix time the model's last detector run finished",
            labels=["model"],
        )
        wend = GaugeMetricFamily(
            "driftd_window_end_timestamp_seconds",
            "End of the newest evaluated window (event time)",
            labels=["model"],
        )
        for model, finished, window_end in state.last_runs:
            last.add_metric([model], finished)
            wend.add_metric([model], window_end)
        pending = GaugeMetricFamily(
            "driftd_outbox_pending", "Deliveries waiting to be sent", labels=["sink"]
        )
        for sink, n in state.outbox_pending:
            pending.add_metric([sink], float(n))
        sched = GaugeMetricFamily(
            "driftd_schedule_seconds", "Configured detector interval", labels=["model"]
        )
        for model, seconds in state.schedules:
            sched.add_metric([model], seconds)
        return [stat, detected, last, wend, pending, sched, *_model_families(state.models),
                *_segment_families(state.segments)]


def _model_families(models: Iterable[ModelSignals]) -> list[Metric]:
    drifted = GaugeMetricFamily(
        "driftd_model_drifted",
        "1 when the model's newest scored window is drifted (its overall verdict), else 0",
        labels=["model"])
    share = GaugeMetricFamily(
        "driftd_model_share_drifted",
        "Share of the model's features drifted in its newest scored window", labels=["model"])
    ece = GaugeMetricFamily(
        "driftd_calibration_ece",
        "Expected calibration error of the newest window with labels", labels=["model"])
    perf = GaugeMetricFamily(
        "driftd_performance",
        "Realized performance of the newest window with labels (roc_auc, accuracy, mae, ...)",
        labels=["model", "metric"])
    estimated = GaugeMetricFamily(
        "driftd_performance_estimated",
        "Performance of the newest window estimated without labels (CBPE: roc_auc, accuracy, "
        "f1, precision, recall)", labels=["model", "metric"])
    lower = GaugeMetricFamily(
        "driftd_performance_estimated_lower",
        "Lower end of the estimate's band (3 sampling sigmas at the window's size)",
        labels=["model", "metric"])
    upper = GaugeMetricFamily(
        "driftd_performance_estimated_upper",
        "Upper end of the estimate's band (3 sampling sigmas at the window's size)",
        labels=["model", "metric"])
    for m in models:
        for metric, (value, low, high) in sorted(m.estimated.items()):
            estimated.add_metric([m.model, metric], float(value))
            if low is not None and high is not None:
                lower.add_metric([m.model, metric], float(low))
                upper.add_metric([m.model, metric], float(high))
    joint = GaugeMetricFamily(
        "driftd_multivariate_reconstruction_error",
        "PCA reconstruction error (mean squared) of the model's newest scored window",
        labels=["model"])
    band = GaugeMetricFamily(
        "driftd_multivariate_threshold",
        "The band the reconstruction error is judged against (bound: upper, lower)",
        labels=["model", "bound"])
    for m in models:
        if m.multivariate is not None:
            error, top, bottom = m.multivariate
            joint.add_metric([m.model], float(error))
            for bound, limit in (("upper", top), ("lower", bottom)):
                if limit is not None:
                    band.add_metric([m.model, bound], float(limit))
        drifted.add_metric([m.model], 1.0 if m.drifted else 0.0)
        share.add_metric([m.model], float(m.share_drifted))
        if m.calibration_ece is not None:
            ece.add_metric([m.model], float(m.calibration_ece))
        for metric, value in sorted(m.performance.items()):
            perf.add_metric([m.model, metric], float(value))
    return [drifted, share, ece, perf, estimated, lower, upper, joint, band]


def _segment_families(segments: Iterable[SegmentSignal]) -> list[Metric]:
    """Per segment (`models.<m>.segments`): the `segment` label takes at most
    `segment_max_values` + 1 values per column (the reference's most frequent values and
    `other`; values seen only in traffic never become labels)."""
    drifted = GaugeMetricFamily(
        "driftd_segment_drifted",
        "1 when the segment drifted in the model's newest scored window (scored segments only)",
        labels=["model", "segment"])
    share = GaugeMetricFamily(
        "driftd_segment_share_drifted",
        "Share of the segment's features drifted in the model's newest scored window",
        labels=["model", "segment"])
    rows = GaugeMetricFamily(
        "driftd_segment_rows", "Rows of the segment in the model's newest scored window",
        labels=["model", "segment"])
    stat = GaugeMetricFamily(
        "driftd_segment_drift_statistic",
        "Latest drift statistic per model, segment, feature and method",
        labels=["model", "segment", "feature", "method"])
    detected = GaugeMetricFamily(
        "driftd_segment_drift_detected",
        "1 when the latest run found drift for the feature/method in the segment",
        labels=["model", "segment", "feature", "method"])
    for s in segments:
        if s.feature is None or s.method is None:
            if s.rows is not None:
                rows.add_metric([s.model, s.segment], float(s.rows))
            if s.statistic is not None:  # scored
                drifted.add_metric([s.model, s.segment], 1.0 if s.drifted else 0.0)
                share.add_metric([s.model, s.segment], float(s.statistic))
            continue
        if s.statistic is not None:
            stat.add_metric([s.model, s.segment, s.feature, s.method], float(s.statistic))
        detected.add_metric([s.model, s.segment, s.feature, s.method], 1.0 if s.drifted else 0.0)
    return [drifted, share, rows, stat, detected]


class DriftdMetrics:
    """Every metric driftd exports, registered on one explicit registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_ingested = Counter(
            "driftd_events_ingested_total", "Events stored (new rows)", ["model"], registry=r
        )
        self.events_duplicate = Counter(
            "driftd_events_duplicate_total",
            "Events already stored (replays, redeliveries)",
            registry=r,
        )
        self.labels_ingested = Counter("driftd_labels_ingested_total", "Labels stored", registry=r)
        self.events_quarantined = Counter(
            "driftd_events_quarantined_total",
            "Messages quarantined",
            ["model", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "driftd_consumer_lag", "Messages behind the log end", ["topic", "partition"], registry=r
        )
        self.ingest_last_success = Gauge(
            "driftd_ingest_last_success_timestamp_seconds",
            "Unix time ingest last stored a batch or was caught up with the log end (its start "
            "until then; 0 without Kafka)",
            registry=r,
        )
        self.detector_run_seconds = Histogram(
            "driftd_detector_run_seconds",
            "Wall time of one model's detector pass",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.detector_errors = Counter(
            "driftd_detector_errors_total",
            "Detector runs that ended in error",
            ["model"],
            registry=r,
        )
        self.alerts_sent = Counter(
            "driftd_alerts_sent_total",
            "Deliveries accepted by a sink",
            ["sink", "type"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "driftd_alert_delivery_failures_total", "Failed delivery attempts", ["sink"], registry=r
        )
        self.outbox_dead = Counter(
            "driftd_outbox_dead_total",
            "Deliveries given up after max_attempts or a permanent error",
            ["sink"],
            registry=r,
        )

        # replicas on a shared lake (store.lake): which replica this is and what it holds
        self.replica_info = Gauge(
            "driftd_replica_info", "1: this process's replica name and store kind",
            ["replica", "store"], registry=r)
        self.leases_held = Gauge(
            "driftd_leases_held",
            "1 when this replica holds the lease (detect:<model>, maintenance)",
            ["replica", "lease"], registry=r)
        self.ingest_fenced = Counter(
            "driftd_ingest_fenced_total",
            "Batches rolled back because another replica had stored their partitions since",
            registry=r)

    def init_sinks(self, names: Iterable[str], event_types: Iterable[str]) -> None:
        """Create per-sink series at 0 so the first failure is an increase, not a new series."""
        types = list(event_types)
        for name in names:
            self.delivery_failures.labels(name)
            self.outbox_dead.labels(name)
            for event_type in types:
                self.alerts_sent.labels(name, event_type)

    def add_stored_state(self, provider: Callable[[], StoredState]) -> None:
        self.registry.register(StoredStateCollector(provider))
