"""The parts of the stack that follow from the job's contract, in plain Python (no CDK).

Everything here is computed from :mod:`clicksentry_infra.contract` — the job's settings table,
its click schema, its archive columns — so the stack cannot drift from the code it deploys, and
the tests in ``tests/infra/`` check the synthesised template against the same modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Physical names: the same as the local stack's (``localdev/stack.py``) where both have one.
CLICKS_STREAM = "clicksentry-clicks"
ANOMALIES_STREAM = "clicksentry-anomalies"
DEAD_LETTER_STREAM = "clicksentry-dead-letters"
ALERT_TOPIC = "clicksentry-alerts"
OPERATOR_TOPIC = "clicksentry-operators"
POISON_QUEUE = "clicksentry-alerts-dlq"
MAPPING_FAILURE_QUEUE = "clicksentry-alerts-mapping-failures"
IDEMPOTENCY_TABLE = "clicksentry-alert-idempotency"
SUPPRESSION_TABLE = "clicksentry-alert-suppression"
TABLE_KEYS = {IDEMPOTENCY_TABLE: ("id", "expiration"), SUPPRESSION_TABLE: ("pk", "expires_at")}
APPLICATION = "clicksentry-job"
FUNCTION = "clicksentry-alerts"
DASHBOARD = "clicksentry"
GLUE_DATABASE = "clicksentry"
API = "clicksentry-ingest"

#: The Lambda's EMF metrics (``alerting/metrics.py``); the job's own Flink metrics are named in
#: the contract (``udfs/operator_metrics.py``).
ALERTS_NAMESPACE = "clicksentry/alerts"
ALERT_METRICS = ("AlertsSent", "AlertsSuppressed", "Duplicates", "PoisonRecords")
FLINK_NAMESPACE = "AWS/KinesisAnalytics"

#: Archive prefixes under the bucket (``flink_jobs/kinesis_tables.py`` writes the first two;
#: Firehose copies the dead-letter stream to the third).
ARCHIVE_PREFIXES = {
    "scored_windows": "scored-windows/",
    "raw_events": "raw-events/",
    "dead_letters": "dead-letters/",
}
#: Largest ``PutRecords`` call Kinesis accepts, and so ``POST /clicks/batch``.
MAX_BATCH = 500
_HIVE_TYPES = {"STRING": "string", "BIGINT": "bigint", "DOUBLE": "double", "BOOLEAN": "boolean"}


@dataclass(frozen=True)
class TableStorage:
    """How a Glue table's files are stored: Hive's input/output formats and SerDe."""

    classification: str
    input_format: str
    output_format: str
    serde: str
    extra_parameters: tuple[tuple[str, str], ...] = ()

    @property
    def table_parameters(self) -> dict[str, str]:
        """The table's parameters that describe its files."""
        return {"classification": self.classification, **dict(self.extra_parameters)}


#: Dead letters: JSON lines (gzip from Firehose).
JSON_LINES = TableStorage(
    "json",
    "org.apache.hadoop.mapred.TextInputFormat",
    "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
    "org.openx.data.jsonserde.JsonSerDe",
)


def parquet_storage(codec: str) -> TableStorage:
    """Scored windows and raw events: Parquet files compressed with ``codec``.

    >>> parquet_storage("SNAPPY").table_parameters
    {'classification': 'parquet', 'parquet.compression': 'SNAPPY'}
    """
    return TableStorage(
        "parquet",
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        (("parquet.compression", codec),),
    )


class ContractError(ValueError):
    """The deployment's values do not fit the job's settings table."""


def property_groups(
    contract: Mapping[str, Any], deployed: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Managed Flink's property groups: every setting of the job, with the deployment's values.

    Each setting of ``flink_jobs.config.SETTINGS`` gets its default unless ``deployed`` gives
    it a value (which may be a CloudFormation token). A setting whose value is empty is left
    out — the service rejects empty values, and the job reads the same default, ``""`` —, a
    deployed value for a setting the job does not have raises :class:`ContractError`, and the
    run options (``python``, ``jarfile``, ``pyFiles``) come first.

    Examples:
        >>> contract = {"run_options_group": "run", "run_options": {"python": "main.py"},
        ...             "settings": [{"group": "job", "key": "a", "default": "1"},
        ...                          {"group": "job", "key": "b", "default": ""}]}
        >>> property_groups(contract, {"job": {"a": "2"}})
        [{'PropertyGroupId': 'run', 'PropertyMap': {'python': 'main.py'}}, {'PropertyGroupId': 'job', 'PropertyMap': {'a': '2'}}]
        >>> property_groups(contract, {"job": {"c": "3"}})
        Traceback (most recent call last):
        ...
        clicksentry_infra.spec.ContractError: job.c: not a setting of the job
    """  # noqa: E501
    known = {(s["group"], s["key"]) for s in contract["settings"]}
    unknown = sorted(
        f"{g}.{k}" for g, keys in deployed.items() for k in keys if (g, k) not in known
    )
    if unknown:
        raise ContractError(f"{', '.join(unknown)}: not a setting of the job")
    groups: dict[str, dict[str, Any]] = {}
    for setting in contract["settings"]:
        group, key = setting["group"], setting["key"]
        value = deployed.get(group, {}).get(key, setting["default"])
        if value is None:
            raise ContractError(f"{group}.{key}: required setting has no value")
        if value != "":
            groups.setdefault(group, {})[key] = value
    return [
        {"PropertyGroupId": contract["run_options_group"], "PropertyMap": contract["run_options"]}
    ] + [{"PropertyGroupId": group, "PropertyMap": values} for group, values in groups.items()]


def _ecma_class(java_class: str) -> str:
    r"""A Java ``[...]`` character class as the negated class a JSON-schema pattern can use.

    >>> _ecma_class(r"[\u0000-\u001f]")
    '^[^\\u0000-\\u001f]*$'
    """
    match = re.fullmatch(r"\[(.*)\]", java_class)
    if not match:
        raise ContractError(f"not a character class: {java_class!r}")
    return f"^[^{match.group(1)}]*$"


def click_schema(contract: Mapping[str, Any]) -> dict[str, Any]:
    """JSON schema (draft 4, as API Gateway validates) of one click event, from the job's schema.

    Required fields, types (``BIGINT`` → a non-negative integer; an optional field may be
    ``null``), the longest value of each string, the actions, the ad actions' extra required
    fields and the characters an entity id must not hold: what ``parse_click`` would dead-letter
    is refused at the door instead. Other fields pass (the job ignores them). What depends on
    the clock or the watermark (``event_time_out_of_range``, ``late``) is the job's to decide.
    """
    click = contract["click"]
    properties: dict[str, Any] = {}
    for field in click["fields"]:
        name = field["name"]
        if field["sql_type"] == "BIGINT":
            prop: dict[str, Any] = {"type": "integer", "minimum": 0}
        else:
            prop = {"type": "string", "maxLength": click["max_chars"][name]}
            if field["required"]:
                prop["minLength"] = 1
            if name in click["entity_id_fields"]:
                prop["pattern"] = _ecma_class(click["forbidden_id_chars"])
        if not field["required"]:  # the job reads null as absent
            prop["type"] = [prop["type"], "null"]
        if name == "action":
            prop["enum"] = list(click["actions"])
        prop["description"] = field["doc"]
        properties[name] = prop
    other_actions = [a for a in click["actions"] if a not in click["ad_actions"]]
    ad_fields = {name: {"type": "string"} for name in ("ad_id", "campaign")}
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "ClickEvent",
        "type": "object",
        "required": [f["name"] for f in click["fields"] if f["required"]],
        "properties": properties,
        "anyOf": [
            {"properties": {"action": {"enum": other_actions}}},
            {"required": list(ad_fields), "properties": ad_fields},
        ],
    }


def batch_schema(contract: Mapping[str, Any]) -> dict[str, Any]:
    """JSON schema of ``POST /clicks/batch``: ``{"events": [click, …]}``, 1 to 500 events."""
    one = {k: v for k, v in click_schema(contract).items() if k not in ("$schema", "title")}
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "ClickBatch",
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": one}
        },
    }


def hive_type(sql_type: str) -> str:
    """The Hive type (Glue, Athena) of a Flink SQL type of the archive.

    >>> hive_type("DOUBLE"), hive_type("ARRAY<ROW<`feature` STRING, `value` DOUBLE>>")
    ('double', 'array<struct<feature:string,value:double>>')
    """
    nested = re.fullmatch(r"ARRAY<ROW<(.*)>>", sql_type)
    if nested is None:
        return _HIVE_TYPES[sql_type]
    fields = [re.fullmatch(r"`?(\w+)`?\s+(\w+)", f.strip()) for f in nested[1].split(",")]
    return "array<struct<" + ",".join(f"{m[1]}:{_HIVE_TYPES[m[2]]}" for m in fields) + ">>"


def glue_columns(columns: list[list[str]] | list[tuple[str, str]]) -> list[dict[str, str]]:
    """Glue columns (Hive types) for ``(name, SQL type)`` pairs, partition columns left out.

    >>> glue_columns([("score", "DOUBLE"), ("dt", "STRING")])
    [{'name': 'score', 'type': 'double'}]
    """
    return [
        {"name": name, "type": hive_type(sql_type)}
        for name, sql_type in columns
        if name not in ("dt", "hour")
    ]


def partition_projection(location: str, start_date: str) -> dict[str, str]:
    """Glue table parameters for partition projection on ``dt`` (days) and ``hour`` (00–23).

    >>> partition_projection("s3://b/x/", "2026-01-01")["storage.location.template"]
    's3://b/x/dt=${dt}/hour=${hour}/'
    """
    return {
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": f"{start_date},NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
        "storage.location.template": location + "dt=${dt}/hour=${hour}/",
    }
