"""The clicksentry archive on S3 for the notebooks: DuckDB views over it, labels, publishing.

Under ``s3://BUCKET/PREFIX`` the job and the stack write (docs/kinesis.md, docs/deploy.md)::

    scored-windows/dt=YYYY-MM-DD/hour=HH/part-*   every scored window (Parquet, Snappy)
    raw-events/dt=YYYY-MM-DD/hour=HH/part-*       every valid click payload and its fields (Parquet)
    dead-letters/dt=YYYY-MM-DD/hour=HH/*          every dead letter (JSON lines; Firehose: gzip)

``docs/archive.md`` documents the columns.

:func:`open_archive` reads it in place with DuckDB and its httpfs extension, through the same
``s3://`` paths on AWS and on a local moto server (``endpoint``). The extension is the one PyPI's
``duckdb-ext-httpfs`` package ships, loaded by its path: nothing is downloaded when a notebook
runs (``INSTALL httpfs`` would fetch it from DuckDB's site). Credentials and region are boto3's
(environment variables, ``AWS_PROFILE``, SSO, an instance role: what ``aws s3 ls`` uses; the
region boto3's, else ``AWS_REGION``, else ``us-east-1``), handed to DuckDB as a temporary S3
secret; against an emulator endpoint without credentials the dummy
pair ``clicksentry``/``clicksentry`` is used.

Only the partitions in ``[from_hour, to_hour)`` (UTC, ``YYYY-MM-DDTHH``) are read: DuckDB
filters the listed files on their ``dt``/``hour`` before opening any.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import boto3
import duckdb
import pandas as pd
from botocore.config import Config

from models.features import FEATURE_NAMES
from udfs.s3_uri import split_s3_uri

#: Columns of a scored window (``udfs/scored_window.py`` SCORED_COLUMNS; ``dt``/``hour``
#: come from the partition path), as DuckDB types: the Parquet files carry the same schema.
SCORED_WINDOW_COLUMNS: dict[str, str] = {
    "record": "VARCHAR",
    "is_anomaly": "BOOLEAN",
    "entity_type": "VARCHAR",
    "entity_id": "VARCHAR",
    "window_start": "VARCHAR",
    "window_end": "VARCHAR",
    "window_end_ms": "BIGINT",
    "detector": "VARCHAR",
    "score": "DOUBLE",
    "raw_score": "DOUBLE",
    "threshold": "DOUBLE",
    "grade": "DOUBLE",
    "confidence": "DOUBLE",
    "kind": "VARCHAR",
    "synthetic": "BOOLEAN",
    **{name: "DOUBLE" for name in FEATURE_NAMES},
    "explanation": "STRUCT(feature VARCHAR, direction VARCHAR, strength DOUBLE,"
                   " attribution_score DOUBLE, value DOUBLE, expected DOUBLE)[]",
}
#: Columns of an archived raw event: the payload as read and its fields (README, "Events").
RAW_EVENT_COLUMNS: dict[str, str] = {
    "payload": "VARCHAR",
    "event_id": "VARCHAR",
    "event_time": "BIGINT",
    "user_id": "VARCHAR",
    "session_id": "VARCHAR",
    "ip": "VARCHAR",
    "user_agent": "VARCHAR",
    "page": "VARCHAR",
    "campaign": "VARCHAR",
    "ad_id": "VARCHAR",
    "action": "VARCHAR",
    "referrer": "VARCHAR",
}
#: Columns of a dead letter (README, "Dead letters").
DEAD_LETTER_COLUMNS: dict[str, str] = {
    "payload": "VARCHAR",
    "reason": "VARCHAR",
    "event_time_ms": "BIGINT",
    "payload_chars": "BIGINT",
    "payload_sha256": "VARCHAR",
}
#: Folder, file pattern, format and columns of each archive view.
VIEWS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "scored_windows": ("scored-windows", "part-*", "parquet", SCORED_WINDOW_COLUMNS),
    "raw_events": ("raw-events", "part-*", "parquet", RAW_EVENT_COLUMNS),
    "dead_letters": ("dead-letters", "*", "json", DEAD_LETTER_COLUMNS),
}
#: Header of a labels file (docs/retraining.md) and its label values.
LABEL_COLUMNS = ("entity_type", "entity_id", "start", "end", "label")
LABEL_VALUES = ("anomaly", "normal")
#: Credentials used against an emulator endpoint when boto3 finds none.
EMULATOR_CREDENTIALS = ("clicksentry", "clicksentry")


def httpfs_extension() -> Path:
    """The httpfs extension file of the installed ``duckdb-ext-httpfs`` for this DuckDB."""
    import duckdb_ext  # the namespace package of duckdb-ext-httpfs

    pattern = f"extensions/v{duckdb.__version__}/*/httpfs.duckdb_extension"
    found = sorted(p for root in duckdb_ext.__path__ for p in Path(root).glob(pattern))
    if not found:
        raise RuntimeError(f"no httpfs extension for DuckDB {duckdb.__version__} in "
                           f"{list(duckdb_ext.__path__)}: install duckdb-ext-httpfs "
                           "(notebooks/requirements.txt) matching duckdb")
    return found[0]


def hour_key(text: str) -> str:
    """``YYYY-MM-DDTHH`` (or ``YYYY-MM-DD``, hour 00) checked and normalised."""
    for layout in ("%Y-%m-%dT%H", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, layout).strftime("%Y-%m-%dT%H")
        except (TypeError, ValueError):
            continue
    raise ValueError(f"{text!r} is not YYYY-MM-DDTHH or YYYY-MM-DD (UTC)")


@dataclass
class Archive:
    """One archive: its S3 location, a boto3 S3 client and a DuckDB connection with views.

    Views (DuckDB SQL, e.g. ``archive.sql("SELECT count(*) FROM scored_windows")``):
    ``scored_windows``, ``raw_events``, ``dead_letters`` (each with ``dt`` and ``hour``), limited
    to the hours asked for; a view whose folder has no file in range is an empty table.
    """

    bucket: str
    prefix: str
    endpoint: str | None
    s3: object
    con: duckdb.DuckDBPyConnection
    from_hour: str
    to_hour: str

    @property
    def root(self) -> str:
        """``s3://bucket/prefix`` (no trailing slash): the model root of published models too."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """A query's result as a DataFrame."""
        return self.con.execute(query, params or []).df()

    def read_bytes(self, uri: str) -> bytes:
        """The bytes of ``s3://…`` (with this archive's endpoint and credentials) or a path."""
        if uri.startswith("s3://"):
            bucket, key = _object(uri)
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return Path(uri).read_bytes()

    def put_bytes(self, uri: str, data: bytes, content_type: str) -> None:
        """Write ``data`` to ``s3://…``."""
        bucket, key = _object(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def _object(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an object's ``s3://bucket/key`` (a key is required)."""
    bucket, key = split_s3_uri(uri)
    if not key:
        raise ValueError(f"{uri!r} is not s3://bucket/key")
    return bucket, key


def open_archive(bucket: str, prefix: str, from_hour: str, to_hour: str,
                 endpoint: str | None = None) -> Archive:
    """The archive under ``s3://bucket/prefix`` for the hours ``[from_hour, to_hour)``.

    ``endpoint`` None is AWS; otherwise an S3 emulator's URL (``http://127.0.0.1:4566``), read
    path-style.
    """
    prefix = prefix.strip("/")
    start, end = hour_key(from_hour), hour_key(to_hour)
    if start >= end:
        raise ValueError(f"empty hour range [{start}, {end})")
    session = boto3.Session()
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    if frozen is None and endpoint is not None:
        session = boto3.Session(aws_access_key_id=EMULATOR_CREDENTIALS[0],
                                aws_secret_access_key=EMULATOR_CREDENTIALS[1])
        frozen = session.get_credentials().get_frozen_credentials()
    region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
    s3 = session.client("s3", endpoint_url=endpoint, region_name=region,
                        config=Config(s3={"addressing_style": "path" if endpoint else "auto"}))
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"LOAD '{httpfs_extension()}'")
    secret = {"TYPE": "s3", "REGION": region}
    if frozen is not None:
        secret |= {"KEY_ID": frozen.access_key, "SECRET": frozen.secret_key}
        if frozen.token:
            secret["SESSION_TOKEN"] = frozen.token
    if endpoint is None:
        secret["ENDPOINT"] = f"s3.{region}.amazonaws.com"
    else:
        scheme, _, host = endpoint.partition("://")
        secret |= {"ENDPOINT": host.rstrip("/"), "URL_STYLE": "path",
                   "USE_SSL": scheme == "https"}
    options = ", ".join(
        f"{k} {v}" if isinstance(v, bool) else f"{k} {_sql_string(str(v))}"
        for k, v in secret.items()
    )
    con.execute(f"CREATE TEMPORARY SECRET archive ({options})")
    archive = Archive(bucket, prefix, endpoint, s3, con, start, end)
    for view, (folder, files, fmt, columns) in VIEWS.items():
        _create_view(archive, view, folder, files, fmt, columns)
    return archive


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _has_files(archive: Archive, folder: str) -> bool:
    key = f"{archive.prefix}/{folder}/" if archive.prefix else f"{folder}/"
    listed = archive.s3.list_objects_v2(Bucket=archive.bucket, Prefix=key, MaxKeys=1)
    return listed.get("KeyCount", 0) > 0


def _create_view(archive: Archive, view: str, folder: str, files: str, fmt: str,
                 columns: dict[str, str]) -> None:
    """``view`` over ``<root>/<folder>/dt=*/hour=*/<files>`` in the archive's hour range."""
    in_range = (f"dt || 'T' || hour >= {_sql_string(archive.from_hour)} "
                f"AND dt || 'T' || hour < {_sql_string(archive.to_hour)}")
    if _has_files(archive, folder):
        pattern = _sql_string(f"{archive.root}/{folder}/dt=*/hour=*/{files}")
        hive = "hive_partitioning = true, hive_types = {'dt': 'VARCHAR', 'hour': 'VARCHAR'}"
        if fmt == "parquet":
            source = f"read_parquet({pattern}, {hive})"
        else:
            struct = "{" + ", ".join(f"{_sql_string(k)}: {_sql_string(v)}"
                                     for k, v in columns.items()) + "}"
            source = (f"read_json({pattern}, format = 'newline_delimited', "
                      f"compression = 'auto_detect', columns = {struct}, {hive})")
    else:  # nothing archived yet: an empty table with the columns
        cols = ", ".join(f"NULL::{t} AS {k}" for k, t in columns.items())
        source = f"(SELECT {cols}, NULL::VARCHAR AS dt, NULL::VARCHAR AS hour LIMIT 0)"
    archive.con.execute(f"CREATE OR REPLACE TEMPORARY VIEW {view} AS "
                        f"SELECT * FROM {source} WHERE {in_range}")


def read_labels(archive: Archive, uri: str) -> pd.DataFrame:
    """A labels file (``s3://…`` or a path) as a DataFrame; ValueError names a bad line.

    Columns ``entity_type, entity_id, start, end, label`` with ``start``/``end`` as UTC
    timestamps and ``label`` ``anomaly`` or ``normal``; ``start`` must be before ``end``.
    """
    text = archive.read_bytes(uri).decode("utf-8")
    labels = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    if tuple(labels.columns) != LABEL_COLUMNS:
        raise ValueError(f"{uri}: the header must be {','.join(LABEL_COLUMNS)}, "
                         f"not {','.join(labels.columns)}")
    for column in ("start", "end"):
        try:
            labels[column] = pd.to_datetime(labels[column], utc=True, format="ISO8601")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{uri}: column {column}: {exc}") from None
    bad = labels.index[~labels["label"].isin(LABEL_VALUES) | (labels["start"] >= labels["end"])
                       | (labels["entity_type"] == "") | (labels["entity_id"] == "")]
    if len(bad):
        line = int(bad[0]) + 2  # the header is line 1
        raise ValueError(f"{uri} line {line}: needs a label in {LABEL_VALUES}, an entity and "
                         f"start < end: {labels.loc[bad[0]].to_dict()}")
    return labels


def label_windows(windows: pd.DataFrame, labels: pd.DataFrame,
                  unlabelled: str = "normal") -> pd.Series:
    """Each window's label: 1 anomaly, 0 normal, NA unknown (``unlabelled="drop"``).

    A window (``window_start``/``window_end``, UTC timestamps) takes the labels of its entity
    whose span it overlaps (``window_start < end`` and ``window_end > start``): 1 if any is
    ``anomaly``, else 0 if any is ``normal``; a window no span covers is ``unlabelled``:
    ``"normal"`` (0) or ``"drop"`` (NA).
    """
    if unlabelled not in ("normal", "drop"):
        raise ValueError(f"unlabelled: {unlabelled!r} is not 'normal' or 'drop'")
    keys = ["entity_type", "entity_id"]
    spans = windows[[*keys, "window_start", "window_end"]].reset_index(names="_row").merge(
        labels, on=keys, how="inner")
    covered = spans[(spans["window_start"] < spans["end"])
                    & (spans["window_end"] > spans["start"])]
    anomalous = set(covered.loc[covered["label"] == "anomaly", "_row"])
    normal = set(covered.loc[covered["label"] == "normal", "_row"])
    default = 0 if unlabelled == "normal" else pd.NA
    values = [1 if i in anomalous else 0 if i in normal else default
              for i in range(len(windows))]
    return pd.Series(values, index=windows.index, dtype="Int64", name="label")


def window_times(windows: pd.DataFrame) -> pd.DataFrame:
    """``window_start``/``window_end`` as UTC timestamps (in place; returns the frame)."""
    for column in ("window_start", "window_end"):
        windows[column] = pd.to_datetime(windows[column], utc=True, format="ISO8601")
    return windows


def top_explanation(explanation: Sequence[dict] | None, n: int = 3) -> str:
    """The ``n`` strongest features of an archived explanation, ``clicks HIGH 340 (expected 12)``.

    >>> top_explanation([{"feature": "clicks", "direction": "HIGH", "strength": 0.9,
    ...                   "attribution_score": 2.0, "value": 340.0, "expected": 12.0}])
    'clicks HIGH 340 (expected 12)'
    """
    ranked = sorted([] if explanation is None else explanation,
                    key=lambda p: -float(p["attribution_score"]))
    return "; ".join(
        f"{p['feature']} {p['direction']} {p['value']:.3g} (expected {p['expected']:.3g})"
        for p in ranked[:n]
    )


class Figures:
    """Saves each figure as ``<folder>/<name>.png`` before showing it; ``saved`` lists them."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.saved: list[Path] = []

    def save(self, fig, name: str) -> None:
        """Write ``fig`` as ``<name>.png`` and show it (inline in a notebook)."""
        import matplotlib.pyplot as plt

        path = self.folder / f"{name}.png"
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
        self.saved.append(path)
        plt.show()
        plt.close(fig)


def versions(*names: str) -> dict[str, str]:
    """Installed versions of the distributions ``names``, and Python's."""
    from importlib.metadata import version

    found = {name: version(name) for name in names}
    found["python"] = ".".join(map(str, sys.version_info[:3]))
    return found
