"""Event messages decoded inside DuckDB: the ingest hot path.

A whole batch of raw Kafka values is parsed and validated by one SQL statement per model
(DuckDB's JSON functions: vectorised, and outside the GIL, so the polling thread keeps
fetching meanwhile). The statement only ever *accepts*: it takes a message when it is plainly
valid and plainly typed — an object with a string id, a configured model, an RFC 3339 or epoch-ms
timestamp inside the accepted range, numbers in numeric features, strings in categorical ones,
no unconfigured features, no duplicate keys, no escapes or tokens two JSON parsers might read
differently. Every other message goes to the pydantic decoder (`monitor.decode.Decoder`), which
stores it with the same conversions or quarantines it with the exact reason. So the rows and the
quarantine are the pydantic decoder's, message for message (tests/monitor/test_fastdecode.py
checks that differentially); the SQL is only a faster route for the common case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from monitor.sql import ident

# Where the statement looks; positions are 1-based in SQL lists.
COMMON_PATHS = ("$", "$.event_id", "$.model", "$.model_version", "$.timestamp", "$.prediction",
                "$.features")
ROOT, EVENT_ID, MODEL, VERSION, TIMESTAMP, PREDICTION, FEATURES = range(1, 8)

# RFC 3339 with a zone, the forms pydantic and DuckDB read alike (others take the slow route).
RFC3339 = (r"^\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
           r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")

# Text that some JSON parser reads differently from pydantic's: unicode escapes (lone
# surrogates), NaN/Infinity tokens and trailing commas (DuckDB's parser accepts both). A message
# containing any of it anywhere, even inside a string, takes the slow route.
_PLAIN_TEXT = r"""NOT contains(v, '\u') AND NOT contains(v, 'NaN')
      AND NOT contains(v, 'Infinity') AND NOT regexp_matches(v, ',\s*[\]}]')"""

NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"


def json_pointer(*parts: str) -> str:
    """RFC 6901 pointer: any feature name addresses exactly its key."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_literal(i) for i in items) + "]"


@dataclass(frozen=True)
class FastPlan:
    """The SQL for one model: CREATE a temp table of the messages it accepts, typed."""

    model: str
    table: str  # temp table name
    features: tuple[tuple[str, str], ...]  # (name, kind) in configured order
    create_sql: str
    empty_sql: str  # the same table, empty: for a model only the slow route accepted

    @property
    def feature_sources(self) -> list[str]:
        return [f"__f{j}" for j in range(len(self.features))]


def build_plan(model: str, features: Mapping[str, str], index: int) -> FastPlan:
    """The accepting statement for `model` (parameters: max bytes, max id length, lo, hi)."""
    names = list(features)
    paths = list(COMMON_PATHS) + [json_pointer("features", n) for n in names]
    checks = []
    values = []
    for j, kind in enumerate(features.values()):
        pos = len(COMMON_PATHS) + 1 + j
        t, x = f"t[{pos}]", f"x[{pos}]"
        if kind == "numeric":
            value = (f"CASE WHEN {t} IN ('BIGINT', 'UBIGINT') THEN {x}::HUGEINT::DOUBLE "
                     f"WHEN {t} = 'DOUBLE' THEN {x}::DOUBLE END")
            checks.append(f"({t} IS NULL OR {t} = 'NULL' OR ({t} IN {NUMBER_TYPES} "
                          f"AND isfinite(__f{j})))")
        else:
            value = f"CASE WHEN {t} = 'VARCHAR' THEN {x} ->> '$' END"
            checks.append(f"({t} IS NULL OR {t} IN ('NULL', 'VARCHAR'))")
        values.append(f"{value} AS __f{j}")
    table = f"__fast_{index}"
    feature_checks = "\n      AND ".join(checks) or "TRUE"
    feature_values = ",\n    ".join(values)
    create = f"""CREATE OR REPLACE TEMP TABLE {table} AS
WITH plain AS (
  SELECT ord, "partition", "offset", v FROM __raw
  WHERE v IS NOT NULL AND strlen(v) <= $max_bytes AND {_PLAIN_TEXT} AND json_valid(v)
),
parsed AS (
  SELECT ord, "partition", "offset",
    json_type(v, {_list(paths)}) AS t,
    json_extract(v, {_list(paths)}) AS x,
    json_keys(v) AS top_keys
  FROM plain
),
typed AS (
  SELECT ord, "partition", "offset", t, top_keys,
    CASE WHEN t[{FEATURES}] = 'OBJECT' THEN json_keys(x[{FEATURES}]) END AS feature_keys,
    x[{EVENT_ID}] ->> '$' AS event_id,
    x[{MODEL}] ->> '$' AS model,
    CASE t[{VERSION}] WHEN 'VARCHAR' THEN x[{VERSION}] ->> '$'
      WHEN 'BIGINT' THEN x[{VERSION}]::BIGINT::VARCHAR
      WHEN 'UBIGINT' THEN x[{VERSION}]::UBIGINT::VARCHAR END AS model_version,
    CASE WHEN t[{TIMESTAMP}] IN ('BIGINT', 'UBIGINT')
      THEN try(epoch_ms(try_cast(x[{TIMESTAMP}] AS BIGINT)))
      WHEN t[{TIMESTAMP}] = 'VARCHAR'
        AND regexp_full_match(x[{TIMESTAMP}] ->> '$', {_literal(RFC3339)})
      THEN timezone('UTC', try_cast(x[{TIMESTAMP}] ->> '$' AS TIMESTAMPTZ)) END AS ts,
    CASE WHEN t[{PREDICTION}] IN ('BIGINT', 'UBIGINT') THEN x[{PREDICTION}]::HUGEINT::DOUBLE
      WHEN t[{PREDICTION}] = 'DOUBLE' THEN x[{PREDICTION}]::DOUBLE
      WHEN t[{PREDICTION}] = 'BOOLEAN' THEN x[{PREDICTION}]::BOOLEAN::DOUBLE END AS prediction,
    CASE WHEN t[{PREDICTION}] = 'VARCHAR' THEN x[{PREDICTION}] ->> '$'
      WHEN t[{PREDICTION}] = 'BOOLEAN' THEN x[{PREDICTION}]::BOOLEAN::VARCHAR
      END AS prediction_class,
    {feature_values}
  FROM parsed
)
SELECT * EXCLUDE (t, top_keys, feature_keys, model),
  NULL::VARCHAR AS extras, NULL::VARCHAR AS type_issues
FROM typed
WHERE t[{ROOT}] = 'OBJECT'
  AND len(top_keys) = len(list_distinct(top_keys))
  AND t[{EVENT_ID}] = 'VARCHAR' AND length(event_id) BETWEEN 1 AND $max_id
  AND t[{MODEL}] = 'VARCHAR' AND model = {_literal(model)}
  AND (t[{VERSION}] IS NULL OR t[{VERSION}] IN ('NULL', 'VARCHAR', 'BIGINT', 'UBIGINT'))
  AND ts BETWEEN $lo AND $hi
  AND (t[{PREDICTION}] IS NULL OR t[{PREDICTION}] IN ('NULL', 'VARCHAR', 'BOOLEAN')
       OR (t[{PREDICTION}] IN {NUMBER_TYPES} AND isfinite(prediction)))
  AND (t[{FEATURES}] IS NULL OR (t[{FEATURES}] = 'OBJECT'
       AND len(feature_keys) = len(list_distinct(feature_keys))
       AND list_has_all({_list(names)}::VARCHAR[], feature_keys)))
  AND {feature_checks}"""
    typed_features = ", ".join(
        f"__f{j} {'DOUBLE' if kind == 'numeric' else 'VARCHAR'}"
        for j, kind in enumerate(features.values()))
    empty = (f"""CREATE OR REPLACE TEMP TABLE {table} (ord BIGINT, "partition" INTEGER,
        "offset" BIGINT, event_id VARCHAR, model_version VARCHAR, ts TIMESTAMP,
        prediction DOUBLE, prediction_class VARCHAR"""
             + (f", {typed_features}" if typed_features else "")
             + ", extras VARCHAR, type_issues VARCHAR)")
    return FastPlan(model, table, tuple(features.items()), create, empty)


class FastDecoder:
    """Runs the accepting statements over a registered `__raw` table."""

    def __init__(self, models: Mapping[str, Mapping[str, str]], *, max_message_bytes: int,
                 max_id_length: int):
        self._plans = {m: build_plan(m, f, i) for i, (m, f) in enumerate(models.items())}
        self._max_bytes = max_message_bytes
        self._max_id = max_id_length

    @property
    def plans(self) -> dict[str, FastPlan]:
        return self._plans

    def models_present(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """The configured models the batch names (a single-model config skips the scan)."""
        if len(self._plans) == 1:
            return list(self._plans)
        rows = con.execute(
            f"""SELECT DISTINCT json_extract_string(v, '$.model') FROM __raw
                WHERE v IS NOT NULL AND strlen(v) <= $max_bytes AND json_valid(v)
                  AND json_type(v) = 'OBJECT'
                  AND json_extract_string(v, '$.model') IN {_list(list(self._plans))}""",
            {"max_bytes": self._max_bytes}).fetchall()
        return [r[0] for r in rows]

    def accept(self, con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[FastPlan]:
        """Create one temp table per model present; return their plans."""
        plans = []
        for model in self.models_present(con):
            plan = self._plans[model]
            con.execute(plan.create_sql, {"max_bytes": self._max_bytes, "max_id": self._max_id,
                                          "lo": lo, "hi": hi})
            plans.append(plan)
        return plans

    @staticmethod
    def rejected_ords(con: duckdb.DuckDBPyConnection, plans: list[FastPlan]) -> list[int]:
        """Ordinals of the messages no plan accepted (they go to the pydantic decoder)."""
        taken = " UNION ALL ".join(f"SELECT ord FROM {p.table}" for p in plans)
        where = f"WHERE ord NOT IN ({taken})" if plans else ""
        return [r[0] for r in con.execute(f"SELECT ord FROM __raw {where} ORDER BY ord")
                .fetchall()]

    @staticmethod
    def drop(con: duckdb.DuckDBPyConnection, plans: list[FastPlan]) -> None:
        for p in plans:
            con.execute(f"DROP TABLE IF EXISTS {ident(p.table)}")


@dataclass(frozen=True)
class RawEvents:
    """One poll's event messages, column-shaped (kept as the consumer returned them)."""

    topic: str
    values: list[bytes | None]
    partitions: list[int]
    offsets: list[int]

    def __len__(self) -> int:
        return len(self.values)


def raw_table(values: list[bytes | None], partitions: list[int], offsets: list[int]
              ) -> tuple[pa.Table, set[int]]:
    """The batch as an Arrow table (ord, partition, offset, v); values that are not UTF-8 are
    nulled (the slow route quarantines them) and their ordinals returned."""
    binary = pa.array(values, pa.binary())
    bad: set[int] = set()
    try:
        text = binary.cast(pa.string())
    except pa.ArrowInvalid:
        cleaned = []
        for i, v in enumerate(values):
            try:
                if v is not None:
                    v.decode()
                cleaned.append(v)
            except UnicodeDecodeError:
                bad.add(i)
                cleaned.append(None)
        text = pa.array(cleaned, pa.binary()).cast(pa.string())
    n = len(values)
    table = pa.table({
        "ord": pa.array(range(n), pa.int64()),
        "partition": pa.array(partitions, pa.int32()),
        "offset": pa.array(offsets, pa.int64()),
        "v": text,
    })
    return table, bad
