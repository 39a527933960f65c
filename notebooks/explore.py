# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # What the archive holds
#
# The scored windows, raw events and dead letters the clicksentry job archived under
# `s3://BUCKET/PREFIX`, read in place from S3 (AWS, or a local moto server) with DuckDB: traffic per
# entity type, feature distributions, scores over time with the flagged windows and the labelled
# spans, and the worst false alerts with the explanation of why they fired.
#
# Run it with the kernel of `.venv-notebooks` (`make notebooks-venv`; see `docs/retraining.md`).
# Set the parameters below; every figure is also saved as a PNG in `FIGURES`.

# %% tags=["parameters"]
BUCKET = "clicksentry-archive"  # the archive bucket (the stack's: clicksentry-archive-ACCOUNT-REGION)
PREFIX = ""                     # the archive's prefix in the bucket ("" = the bucket's root)
FROM_HOUR = "2026-01-05T00"     # first dt/hour partition read (UTC, inclusive)
TO_HOUR = "2026-01-05T01"       # end of the range (UTC, exclusive)
S3_ENDPOINT = None              # None = AWS; an emulator's URL, e.g. "http://127.0.0.1:4566"
LABELS_URI = None               # optional labels file (s3://… or a path): marks labelled spans
FIGURES = "figures/explore"     # folder for the PNG of every figure (created)
TOP_FALSE_ALERTS = 10           # how many of the worst false alerts to list

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from archive import (
    Figures,
    label_windows,
    open_archive,
    read_labels,
    top_explanation,
    window_times,
)

from models.features import FEATURE_NAMES

archive = open_archive(BUCKET, PREFIX, FROM_HOUR, TO_HOUR, endpoint=S3_ENDPOINT)
figures = Figures(FIGURES)
print(f"archive {archive.root}/, hours [{archive.from_hour}, {archive.to_hour}) UTC")

# %% [markdown]
# ## What is there
#
# Rows and `dt`/`hour` partitions of each part of the archive in the range.

# %%
archive.sql("""
    SELECT 'scored windows' AS archive, count(*) AS rows,
           count(DISTINCT dt || 'T' || hour) AS partitions FROM scored_windows
    UNION ALL
    SELECT 'raw events', count(*), count(DISTINCT dt || 'T' || hour) FROM raw_events
    UNION ALL
    SELECT 'dead letters', count(*), count(DISTINCT dt || 'T' || hour) FROM dead_letters
""")

# %% [markdown]
# ## Traffic per entity type
#
# Raw events per minute by action, and entity windows scored (and flagged) per minute by entity
# type: every valid event counts towards its page, and an impression or click also towards its ad
# and campaign.

# %%
events_per_minute = archive.sql("""
    SELECT (event_time // 60000) * 60000 AS minute_ms, action, count(*) AS events
    FROM raw_events GROUP BY ALL ORDER BY minute_ms
""")
windows_per_minute = archive.sql("""
    SELECT (window_end_ms // 60000) * 60000 AS minute_ms, entity_type,
           count(*) AS windows, sum(events) AS events, sum(is_anomaly::INT)::BIGINT AS flagged
    FROM scored_windows GROUP BY ALL ORDER BY minute_ms
""")
for frame in (events_per_minute, windows_per_minute):
    frame["minute"] = pd.to_datetime(frame["minute_ms"], unit="ms", utc=True)

fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
events_per_minute.pivot(index="minute", columns="action", values="events").plot(ax=axes[0])
axes[0].set(ylabel="raw events / min", yscale="log", title="Raw events by action")
by_type = windows_per_minute.pivot(index="minute", columns="entity_type", values="windows")
by_type.plot(ax=axes[1])
axes[1].set(ylabel="windows / min", title="Entity windows scored by entity type")
windows_per_minute.pivot(index="minute", columns="entity_type", values="flagged").plot(ax=axes[2])
axes[2].set(ylabel="flagged / min", title="Windows flagged by the online detector")
fig.tight_layout()
figures.save(fig, "traffic")

# %%
archive.sql("""
    SELECT entity_type, count(DISTINCT entity_id) AS entities, count(*) AS windows,
           sum(events)::BIGINT AS events, sum(synthetic::INT)::BIGINT AS synthetic_windows,
           sum(is_anomaly::INT)::BIGINT AS flagged,
           round(100.0 * sum(is_anomaly::INT) / count(*), 3) AS flagged_pct
    FROM scored_windows GROUP BY ALL ORDER BY entity_type
""")

# %% [markdown]
# ## Dead letters
#
# Malformed and late payloads by reason (README, "Dead letters").

# %%
reasons = archive.sql("""
    SELECT reason, count(*) AS dead_letters FROM dead_letters GROUP BY ALL ORDER BY 2 DESC
""")
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.barh(reasons["reason"], reasons["dead_letters"])
ax.invert_yaxis()
ax.set(xlabel="dead letters", title="Dead letters by reason")
fig.tight_layout()
figures.save(fig, "dead_letters")
reasons

# %% [markdown]
# ## Feature distributions
#
# The twelve window features (`models/features.py`) per entity type; counts on a log scale.

# %%
windows = window_times(archive.sql("""
    SELECT * EXCLUDE (record) FROM scored_windows
    ORDER BY window_end_ms, entity_type, entity_id
"""))
labels = read_labels(archive, LABELS_URI) if LABELS_URI else None
if labels is not None:
    windows["label"] = label_windows(windows, labels)
print(f"{len(windows)} scored windows of {windows.groupby(['entity_type', 'entity_id']).ngroups} "
      f"entities, {windows['window_end'].min()} .. {windows['window_end'].max()}")

fig, axes = plt.subplots(3, 4, figsize=(14, 9))
for ax, feature in zip(axes.flat, FEATURE_NAMES, strict=True):
    for entity_type, group in windows.groupby("entity_type"):
        ax.hist(group[feature], bins=40, histtype="step", label=entity_type)
    ax.set(title=feature, yscale="log")
axes.flat[0].legend()
fig.suptitle("Feature distributions per entity type (windows, log count)")
fig.tight_layout()
figures.save(fig, "feature_distributions")

# %% [markdown]
# ## Scores over time
#
# Every scored window's score by window end, per entity type; red: flagged by the online detector;
# shaded: the labelled anomaly spans of that entity type (when a labels file is given).

# %%
def spans_of(entity_type, entity_id=None, label="anomaly"):
    """Merged (start, end) intervals of the labels of an entity type (or one entity)."""
    if labels is None:
        return []
    chosen = labels[(labels["entity_type"] == entity_type) & (labels["label"] == label)]
    if entity_id is not None:
        chosen = chosen[chosen["entity_id"] == entity_id]
    merged = []
    for start, end in sorted(zip(chosen["start"], chosen["end"], strict=True)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


entity_types = sorted(windows["entity_type"].unique())
fig, axes = plt.subplots(len(entity_types), 1, figsize=(11, 3 * len(entity_types)),
                         sharex=True, squeeze=False)
for ax, entity_type in zip(axes[:, 0], entity_types, strict=True):
    group = windows[windows["entity_type"] == entity_type]
    for start, end in spans_of(entity_type):
        ax.axvspan(start, end, color="tab:orange", alpha=0.25, lw=0)
    ax.scatter(group["window_end"], group["score"], s=3, color="0.6", label="window")
    flagged = group[group["is_anomaly"]]
    ax.scatter(flagged["window_end"], flagged["score"], s=18, color="tab:red", label="flagged")
    threshold = group.groupby("window_end")["threshold"].median()
    ax.plot(threshold.index, threshold.values, color="black", lw=0.8, label="threshold (median)")
    ax.set(ylabel="score", title=f"{entity_type}: {len(flagged)} flagged of {len(group)}")
axes[0, 0].legend(loc="upper left")
fig.tight_layout()
figures.save(fig, "scores_over_time")

# %% [markdown]
# ## Entities up close
#
# Score and threshold of single entities: one from each labelled anomaly (the first entity of each
# distinct span) and the entities of the worst false alerts; red dots are the flagged windows,
# orange the labelled anomaly spans, grey the spans labelled normal.

# %%
if "label" in windows:
    alerts = windows[windows["is_anomaly"] & windows["label"].eq(0).fillna(False).astype(bool)]
else:  # without labels no alert can be called false: the strongest alerts
    alerts = windows[windows["is_anomaly"]]
worst = alerts.sort_values(["score", "grade"], ascending=False).head(TOP_FALSE_ALERTS)

picked = []
if labels is not None:
    anomalies = labels[labels["label"] == "anomaly"].sort_values(["start", "entity_type"])
    for _, first in anomalies.groupby(["start", "end"], sort=True).head(1).iterrows():
        picked.append((first["entity_type"], first["entity_id"]))
for entity in zip(worst["entity_type"], worst["entity_id"], strict=True):
    if entity not in picked:
        picked.append(entity)
picked = picked[:9]
rows = max(1, (len(picked) + 2) // 3)
fig, axes = plt.subplots(rows, 3, figsize=(14, 3 * rows), squeeze=False)
for ax in axes.flat[len(picked):]:
    ax.axis("off")
for ax, (entity_type, entity_id) in zip(axes.flat, picked, strict=False):
    one = windows[(windows["entity_type"] == entity_type) & (windows["entity_id"] == entity_id)]
    for start, end in spans_of(entity_type, entity_id):
        ax.axvspan(start, end, color="tab:orange", alpha=0.3, lw=0)
    for start, end in spans_of(entity_type, entity_id, label="normal"):
        ax.axvspan(start, end, color="0.85", alpha=0.5, lw=0)
    ax.plot(one["window_end"], one["score"], lw=0.8)
    ax.plot(one["window_end"], one["threshold"], color="black", lw=0.6, ls="--")
    hits = one[one["is_anomaly"]]
    ax.scatter(hits["window_end"], hits["score"], color="tab:red", s=20, zorder=3)
    ax.set_title(f"{entity_type}/{entity_id}", fontsize=9)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
fig.tight_layout()
figures.save(fig, "entities")

# %% [markdown]
# ## The worst false alerts, and why they fired
#
# Flagged windows that no labelled anomaly covers, by score: each with the strongest features of
# its explanation (`direction`, observed `value`, the entity's `expected` baseline; the archive
# keeps the explanation as a list of features, strongest first: `docs/archive.md`).

# %%
if "label" in windows:
    true_alerts = int((windows["is_anomaly"] & windows["label"].eq(1).fillna(False)).sum())
    print(f"online detector: {int(windows['is_anomaly'].sum())} flagged windows, {true_alerts} in "
          f"a labelled anomaly, {len(alerts)} false; "
          f"{int(windows['label'].eq(1).sum())} windows labelled anomalous")
table = worst[["entity_type", "entity_id", "window_end", "score", "threshold", "grade",
               "kind"]].copy()
table["why"] = [top_explanation(e) for e in worst["explanation"]]
with pd.option_context("display.max_colwidth", 200):
    display(table)
if len(worst):
    parts = sorted(worst.iloc[0]["explanation"], key=lambda p: -p["attribution_score"])
    print("the worst one's explanation (its 5 strongest features):")
    display(pd.DataFrame(parts[:5]))

# %%
def strongest(explanation):
    if explanation is None or len(explanation) == 0:
        return "(none)"
    part = max(explanation, key=lambda p: p["attribution_score"])
    return f"{part['feature']} {part['direction'].lower()}"


flagged = windows[windows["is_anomaly"]].copy()
flagged["strongest"] = [strongest(e) for e in flagged["explanation"]]
if "label" in flagged:
    flagged["alert"] = np.where(flagged["label"].eq(1).fillna(False), "true alert", "false alert")
else:
    flagged["alert"] = "alert"
counts = flagged.groupby(["strongest", "alert"]).size().unstack(fill_value=0)
fig, ax = plt.subplots(figsize=(9, max(3, 0.35 * len(counts))))
if len(counts):
    counts.loc[counts.sum(axis=1).sort_values().index].plot.barh(ax=ax, stacked=True)
else:
    ax.text(0.5, 0.5, "no flagged windows", ha="center", transform=ax.transAxes)
ax.set(xlabel="flagged windows", ylabel="strongest attribution",
       title="Why windows were flagged: the strongest feature of each explanation")
fig.tight_layout()
figures.save(fig, "alert_reasons")

# %%
print("figures:", *[str(p) for p in figures.saved], sep="\n  ")
