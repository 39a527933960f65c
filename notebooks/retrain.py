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
# # Retrain the random forest and publish it
#
# Scored windows from the archive on S3, labelled by a labels file (`docs/retraining.md`: one
# line per entity and time span, `anomaly` or `normal`, e.g. from on-call feedback or, for a
# simulated run, the simulator's ground truth); a time-ordered split into training and hold-out;
# a scikit-learn `RandomForestClassifier` on the window features plus the online detector's
# `score` and `grade`; on the hold-out, its precision/recall curve, confusion matrix and feature
# importances against the online detector alone (its `is_anomaly` flags); a decision threshold
# for a stated precision; and the publication of the forest as a skops artefact with its model
# card and the pointer to the current version:
#
# ```
# s3://BUCKET/PREFIX/models/<MODEL_NAME>/<version>/model.skops
# s3://BUCKET/PREFIX/models/<MODEL_NAME>/<version>/card.json
# s3://BUCKET/PREFIX/models/<MODEL_NAME>/current.json
# ```
#
# Run it with the kernel of `.venv-notebooks`: its numpy, scikit-learn, scipy and skops are the
# job's versions, so the artefact loads in the job.

# %% tags=["parameters"]
BUCKET = "clicksentry-archive"  # the archive bucket (the stack's: clicksentry-archive-ACCOUNT-REGION)
PREFIX = ""                     # the archive's prefix in the bucket ("" = the bucket's root)
FROM_HOUR = "2026-01-05T00"     # first dt/hour partition read (UTC, inclusive)
TO_HOUR = "2026-01-05T01"       # end of the range (UTC, exclusive)
S3_ENDPOINT = None              # None = AWS; an emulator's URL, e.g. "http://127.0.0.1:4566"
LABELS_URI = "s3://clicksentry-archive/labels/labels.csv"  # the labels file (s3://… or a path)
UNLABELLED = "normal"           # windows no label covers: "normal" or "drop" (left out)
FIGURES = "figures/retrain"     # folder for the PNG of every figure (created)
MODEL_NAME = "click-forest"     # published under models/<MODEL_NAME>/
VERSION = None                  # None = this run's UTC time, e.g. 20260105T101500Z
TARGET_PRECISION = 0.9          # the hold-out precision the decision threshold must reach;
#                                 unseen streams score 0.02-0.03 lower (docs/retraining.md)
HOLDOUT_FROM = None             # ISO-8601 UTC: windows ending after it are held out
HOLDOUT_FRACTION = 0.3          # with HOLDOUT_FROM None: the last 30 % of the window ends
N_ESTIMATORS = 300              # trees
MAX_DEPTH = 12                  # depth limit (bounds the artefact's size)
RANDOM_STATE = 0
PUBLISH = True                  # False: evaluate only, write nothing

# %%
from datetime import UTC, datetime

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from archive import Figures, label_windows, open_archive, read_labels, versions, window_times
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_score,
    recall_score,
)

from models import artifacts
from models.features import FEATURE_NAMES
from models.model_card import (
    ARTEFACT,
    CARD,
    KNOWN_INPUTS,
    ModelCard,
    pointer_json,
    pointer_key,
    read_pointer,
    version_key,
)

#: The forest's inputs, in the order it reads them (and the card names them).
INPUTS = (*FEATURE_NAMES, "score", "grade")
assert set(INPUTS) <= set(KNOWN_INPUTS), INPUTS

archive = open_archive(BUCKET, PREFIX, FROM_HOUR, TO_HOUR, endpoint=S3_ENDPOINT)
figures = Figures(FIGURES)
print(f"archive {archive.root}/, hours [{archive.from_hour}, {archive.to_hour}) UTC")

# %% [markdown]
# ## Labels joined to windows
#
# A window takes the labels of its entity whose span it overlaps: `anomaly` if any does, else
# `normal`; a window no span covers is `UNLABELLED`.

# %%
labels = read_labels(archive, LABELS_URI)
print(f"{len(labels)} labelled spans in {LABELS_URI}:")
display(labels.groupby(["label", "entity_type"]).size().rename("spans").reset_index())

windows = window_times(archive.sql(f"""
    SELECT entity_type, entity_id, window_start, window_end, window_end_ms, is_anomaly,
           {", ".join(INPUTS)}
    FROM scored_windows ORDER BY window_end_ms, entity_type, entity_id
"""))
windows["label"] = label_windows(windows, labels, unlabelled=UNLABELLED)
dropped = int(windows["label"].isna().sum())
windows = windows.dropna(subset=["label"]).reset_index(drop=True)
windows["label"] = windows["label"].astype(int)
print(f"{len(windows)} labelled windows ({dropped} unlabelled left out), "
      f"{int(windows['label'].sum())} anomalous")
windows.groupby(["entity_type", "label"]).size().unstack(fill_value=0)

# %% [markdown]
# ## Time-ordered split
#
# Training: the windows ending at or before the cut; hold-out: those ending after it. The cut is
# `HOLDOUT_FROM`, or the window end that leaves the last `HOLDOUT_FRACTION` of the window ends
# for the hold-out.

# %%
if HOLDOUT_FROM is not None:
    cut = pd.Timestamp(HOLDOUT_FROM)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
else:
    ends = windows["window_end"].drop_duplicates().sort_values().reset_index(drop=True)
    cut = ends.iloc[max(int(len(ends) * (1 - HOLDOUT_FRACTION)) - 1, 0)]
held_out = windows["window_end"] > cut
train, hold = windows[~held_out], windows[held_out]
if train.empty or hold.empty or train["label"].nunique() < 2:
    raise ValueError(f"the cut {cut} leaves {len(train)} training windows "
                     f"({int(train['label'].sum())} anomalous) and {len(hold)} held out: "
                     "choose HOLDOUT_FROM or the hour range so both have data and training "
                     "has both labels")
training_range = {
    "start": train["window_start"].min().strftime("%Y-%m-%dT%H:%M:%SZ"),
    "end": train["window_end"].max().strftime("%Y-%m-%dT%H:%M:%SZ"),
}
print(f"cut at {cut}: training {len(train)} windows ({int(train['label'].sum())} anomalous) "
      f"{training_range['start']} .. {training_range['end']}; hold-out {len(hold)} windows "
      f"({int(hold['label'].sum())} anomalous)")

per_minute = windows.assign(minute=windows["window_end"].dt.floor("min")).groupby(
    "minute")["label"].agg(["size", "sum"])
fig, ax = plt.subplots(figsize=(11, 3.5))
ax.bar(per_minute.index, per_minute["sum"], width=1 / 1440, color="tab:orange",
       label="anomalous windows")
ax.axvline(cut, color="black", ls="--", label="training | hold-out")
ax.set(ylabel="windows / min", title="Labelled anomalous windows over time, and the split")
ax.legend()
fig.tight_layout()
figures.save(fig, "split")

# %% [markdown]
# ## The forest
#
# Inputs: the twelve window features and the online detector's `score` and `grade`, in `INPUTS`
# order, as plain arrays (the job builds its rows in the card's `inputs` order).

# %%
forest = RandomForestClassifier(
    n_estimators=N_ESTIMATORS,
    max_depth=MAX_DEPTH,
    min_samples_leaf=2,
    class_weight="balanced_subsample",
    random_state=RANDOM_STATE,
    n_jobs=1,
)
forest.fit(train[list(INPUTS)].to_numpy(dtype=float), train["label"].to_numpy(dtype=int))
assert list(forest.classes_) == [0, 1], forest.classes_
probability = forest.predict_proba(hold[list(INPUTS)].to_numpy(dtype=float))[:, 1]
y = hold["label"].to_numpy(dtype=int)
online = hold["is_anomaly"].to_numpy(dtype=bool)
print(f"fitted {N_ESTIMATORS} trees on {len(train)} windows x {len(INPUTS)} inputs")

# %% [markdown]
# ## The decision threshold
#
# The lowest forest probability whose hold-out precision reaches `TARGET_PRECISION` (the
# threshold with the most recall at that precision). If no probability reaches it, or the
# hold-out has no anomalous window, the fall-back is 0.5 — the forest's own decision point (its
# classes are weighted to balance) — and the card says so: `target_precision_reached: false`
# and the rule in `threshold_rule`. The version is published all the same (unless `PUBLISH` is
# False): read its card before pointing a job at it.

# %%
precision, recall, thresholds = precision_recall_curve(y, probability)
reaching = [i for i, p in enumerate(precision[:-1]) if p >= TARGET_PRECISION]
if y.sum() and reaching:
    threshold = float(thresholds[reaching[0]])
    rule = f"lowest probability with hold-out precision >= {TARGET_PRECISION}"
elif y.sum():
    threshold, rule = 0.5, f"fall-back 0.5: no probability reaches precision {TARGET_PRECISION}"
else:
    threshold, rule = 0.5, "fall-back 0.5: no anomalous window in the hold-out"
flags = probability >= threshold
reached = bool(y.sum()) and precision_score(y, flags, zero_division=0) >= TARGET_PRECISION
print(f"threshold {threshold:.4f}: {rule}"
      + ("" if reached else f"\nWARNING: hold-out precision {TARGET_PRECISION} not reached"))


def scores(flagged):
    """Hold-out precision, recall, F1 and confusion counts of boolean flags."""
    tn, fp, fn, tp = confusion_matrix(y, flagged, labels=[0, 1]).ravel()
    p = precision_score(y, flagged, zero_division=0)
    r = recall_score(y, flagged, zero_division=0)
    return {"precision": round(float(p), 4), "recall": round(float(r), 4),
            "f1": round(float(2 * p * r / (p + r)) if p + r else 0.0, 4),
            "tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn),
            "flagged": int(tp + fp)}


comparison = pd.DataFrame.from_dict(
    {"forest": scores(flags), "online detector": scores(online)}, orient="index")
comparison

# %%
for name, flagged in (("forest", flags), ("online detector", online)):
    row = scores(flagged)
    print(f"hold-out {name}: precision {row['precision']:.3f}, recall {row['recall']:.3f} "
          f"({row['tp']} of {row['tp'] + row['fn']} anomalous windows, {row['fp']} false alerts)")

# %%
fig, ax = plt.subplots(figsize=(7, 5.5))
ax.plot(recall, precision, label=f"forest (AP {average_precision_score(y, probability):.2f})")
online_p, online_r, _ = precision_recall_curve(y, hold["score"].to_numpy(dtype=float))
ax.plot(online_r, online_p, label=f"online score (AP "
        f"{average_precision_score(y, hold['score'].to_numpy(dtype=float)):.2f})", alpha=0.7)
ax.scatter([scores(online)["recall"]], [scores(online)["precision"]], color="tab:red", zorder=3,
           label="online detector's flags")
ax.scatter([scores(flags)["recall"]], [scores(flags)["precision"]], color="black", marker="x",
           s=60, zorder=3, label=f"forest at threshold {threshold:.3f}")
ax.axhline(TARGET_PRECISION, color="0.5", ls=":", label=f"target precision {TARGET_PRECISION}")
ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
       title="Hold-out precision / recall")
ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
figures.save(fig, "precision_recall")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (name, flagged) in zip(axes, [("forest", flags), ("online detector", online)],
                               strict=True):
    ConfusionMatrixDisplay(confusion_matrix(y, flagged, labels=[0, 1]),
                           display_labels=["normal", "anomaly"]).plot(ax=ax, colorbar=False)
    ax.set_title(f"{name} (hold-out)")
fig.tight_layout()
figures.save(fig, "confusion_matrices")

# %%
importances = pd.Series(forest.feature_importances_, index=INPUTS).sort_values()
fig, ax = plt.subplots(figsize=(7, 5))
importances.plot.barh(ax=ax)
ax.set(xlabel="mean decrease in impurity", title="Forest feature importances")
fig.tight_layout()
figures.save(fig, "feature_importances")

# %% [markdown]
# ## Publish
#
# The artefact is `models.artifacts.dumps(forest)` (skops); the card names its SHA-256, inputs in
# order, threshold, training range, hold-out metrics and library versions. The pointer is written
# last, so whoever follows it finds the version's files already there. The job loads a version
# only if the artefact's SHA-256 equals the card's, with skops' trusted types.

# %%
version = VERSION or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
data = artifacts.dumps(forest)
sha256 = artifacts.sha256_of(data)
artifacts.loads(data, sha256)  # what the job does: pin check and skops' trusted-type check
card = ModelCard(
    name=MODEL_NAME,
    version=version,
    sha256=sha256,
    inputs=INPUTS,
    threshold=threshold,
    training_range=training_range,
    metrics={
        "holdout": {"forest": scores(flags), "online_detector": scores(online),
                    "windows": len(hold), "anomalous": int(y.sum()),
                    "from": cut.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "training": {"windows": len(train), "anomalous": int(train["label"].sum())},
        "target_precision": TARGET_PRECISION,
        "target_precision_reached": reached,
        "threshold_rule": rule,
        "labels": LABELS_URI,
        "unlabelled": UNLABELLED,
    },
    library_versions=versions("scikit-learn", "numpy", "scipy", "skops"),
)
artefact_uri = version_key(archive.root, MODEL_NAME, version, ARTEFACT)
card_uri = version_key(archive.root, MODEL_NAME, version, CARD)
pointer_uri = pointer_key(archive.root, MODEL_NAME)
print(card.to_json())
if PUBLISH:
    archive.put_bytes(artefact_uri, data, "application/octet-stream")
    archive.put_bytes(card_uri, card.to_json().encode(), "application/json")
    archive.put_bytes(pointer_uri, pointer_json(MODEL_NAME, version).encode(), "application/json")
    print(f"published {artefact_uri} ({len(data)} bytes)\n          {card_uri}\n"
          f"          {pointer_uri} -> {version}")
else:
    print(f"PUBLISH is False: nothing written ({artefact_uri} would be {len(data)} bytes)")

# %% [markdown]
# ## Read back
#
# What the job will read: the pointer names this version, the card validates, and the artefact's
# SHA-256 is the card's.

# %%
if PUBLISH:
    assert read_pointer(archive.read_bytes(pointer_uri)) == (MODEL_NAME, version)
    published = ModelCard.from_json(archive.read_bytes(card_uri))
    assert published == card
    loaded = artifacts.loads(archive.read_bytes(artefact_uri), published.sha256)
    check = loaded.predict_proba(hold[list(published.inputs)].to_numpy(dtype=float))[:, 1]
    assert np.allclose(check, probability)
    print(f"read back {MODEL_NAME} {version}: sha256 {published.sha256}, "
          f"{len(published.inputs)} inputs, threshold {published.threshold:.4f}")

# %%
print("figures:", *[str(p) for p in figures.saved], sep="\n  ")
