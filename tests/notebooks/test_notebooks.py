"""The retraining notebooks run as a data scientist runs them, on the real job's archive on S3.

GIVEN two simulated runs back to back (each with all four labelled anomaly kinds, so training and
hold-out both hold every kind) run by the embedded job, whose archive — scored windows and raw
events as the job writes them, dead letters gzip-compressed in ``dt=/hour=`` folders as the
stack's Firehose writes them — and the labels file written from the simulator's truth are
uploaded to a bucket of a moto server of the session's own, under a prefix;
WHEN ``notebooks/explore`` and ``notebooks/retrain`` are executed top to bottom by
``notebooks/run_notebook.py`` with the kernel of ``.venv-notebooks``, their parameters set to
that bucket, prefix, hour range, endpoint and labels file (the hold-out starts with the second
run);
THEN every cell ran without error and every figure shown is a real PNG in the output folder;
AND the retrain notebook published one version: the pointer names it, the card validates, its
SHA-256 is the artefact's, and in this virtualenv (the job's versions) the artefact loads with
``models.artifacts.loads`` pinned to the card and its ``predict_proba`` scores archived windows
built in the card's ``inputs`` order.

AND (without the job) each committed ``.ipynb`` has no outputs and holds exactly the cells of
its jupytext ``.py``, the reviewed source.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import boto3
import numpy as np
import pytest
import sklearn
from embedded_job import run_embedded
from sklearn.ensemble import RandomForestClassifier

from flink_jobs.job import LocalOutputs
from localdev.labels import labels_csv, labels_from_truth
from localdev.part_files import read_records
from localdev.simulator import SimulationConfig, simulate
from models import artifacts
from models.features import FEATURE_NAMES
from models.model_card import ARTEFACT, CARD, ModelCard, pointer_key, read_pointer

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NB_PYTHON = ROOT / ".venv-notebooks" / "bin" / "python"
#: The notebooks and the figures each saves.
FIGURES = {
    "explore": {"traffic", "dead_letters", "feature_distributions", "scores_over_time",
                "entities", "alert_reasons"},
    "retrain": {"split", "precision_recall", "confusion_matrices", "feature_importances"},
}
#: Two five-minute runs back to back: the second starts where the first ends.
FIRST = SimulationConfig(minutes=5, events_per_second=160, seed=21)
SECOND = SimulationConfig(minutes=5, events_per_second=160, seed=22,
                          start=datetime(2026, 1, 5, 0, 5, tzinfo=UTC))
BUCKET, PREFIX = "clicksentry-notebooks", "team/clicksentry"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "clicksentry", "AWS_SECRET_ACCESS_KEY": "clicksentry",
               "AWS_DEFAULT_REGION": "us-east-1"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def notebook_python() -> Path:
    """The Python of ``.venv-notebooks`` (built by ``make notebooks-venv`` if missing)."""
    if not NB_PYTHON.exists():
        subprocess.run(["make", "notebooks-venv"], cwd=ROOT, check=True, timeout=1800)
    return NB_PYTHON


def upload_archive(s3, outputs: LocalOutputs) -> int:
    """The job's outputs under ``s3://BUCKET/PREFIX/`` in the layout they have on AWS."""
    count = 0
    for folder in (outputs.scored_windows, outputs.raw_events):
        for path in sorted(folder.rglob("part-*")):  # committed part files (not .part-*)
            key = f"{PREFIX}/{folder.name}/{path.relative_to(folder).as_posix()}"
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
            count += 1
    # Dead letters: Firehose's layout, gzip objects in dt=/hour= folders of their arrival hour:
    # here the hour of their event time when it lies in the stream, else the line's before.
    ends = [w["window_end_ms"] for w in read_records(outputs.scored_windows)]
    first, last = min(ends) - 10_000, max(ends)
    by_hour: dict[tuple[str, str], list[str]] = {}
    hour = datetime.fromtimestamp(first / 1000, UTC)
    for path in sorted(outputs.dead_letters.glob("part-*")):
        for line in path.read_text(encoding="utf-8").splitlines():
            at = json.loads(line).get("event_time_ms")
            if at is not None and first <= at <= last:
                hour = datetime.fromtimestamp(at / 1000, UTC)
            by_hour.setdefault((hour.strftime("%Y-%m-%d"), hour.strftime("%H")), []).append(line)
    for (dt, hh), lines in sorted(by_hour.items()):
        key = (f"{PREFIX}/dead-letters/dt={dt}/hour={hh}/"
               f"clicksentry-dead-letters-archive-1-{dt}-{hh}-00-00-test.gz")
        body = gzip.compress(("\n".join(lines) + "\n").encode())
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        count += 1
    return count


@pytest.fixture(scope="module")
def archive(tmp_path_factory, moto_endpoint) -> dict:
    """The job's archive and the labels file in the bucket; the notebooks' parameters."""
    root = tmp_path_factory.mktemp("notebooks")
    first, second = simulate(FIRST), simulate(SECOND)
    events = root / "events.jsonl"
    events.write_text("\n".join(first.lines + second.lines) + "\n", encoding="utf-8")
    run_embedded(events, root / "job", parallelism=1)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="clicksentry", aws_secret_access_key="clicksentry")
    s3.create_bucket(Bucket=BUCKET)
    assert upload_archive(s3, LocalOutputs(root / "job")) > 3
    labels = labels_from_truth(first.truth) + labels_from_truth(second.truth)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/labels/labels.csv", Body=labels_csv(labels))
    return {
        "root": root,
        "s3": s3,
        "windows": list(read_records(LocalOutputs(root / "job").scored_windows)),
        "parameters": {
            "BUCKET": BUCKET,
            "PREFIX": PREFIX,
            "FROM_HOUR": "2026-01-04T23",  # jittered first events are archived under 23:00
            "TO_HOUR": "2026-01-05T01",
            "S3_ENDPOINT": moto_endpoint,
            "LABELS_URI": f"s3://{BUCKET}/{PREFIX}/labels/labels.csv",
        },
    }


def execute(notebook_python: Path, name: str, parameters: dict, out: Path) -> dict:
    """Run ``notebooks/<name>.ipynb`` headless; the executed notebook (JSON) and its figures."""
    figures = out / "figures" / name
    overrides = {**parameters, "FIGURES": str(figures)}
    command = [str(notebook_python), str(NOTEBOOKS / "run_notebook.py"),
               str(NOTEBOOKS / f"{name}.ipynb"), "--output", str(out / f"{name}.ipynb")]
    for key, value in overrides.items():
        command += ["-p", f"{key}={value!r}"]
    env = {k: v for k, v in os.environ.items()
           if k != "PYFLINK_GATEWAY_DISABLED" and not k.startswith("AWS_")}
    env |= {**CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    executed = json.loads((out / f"{name}.ipynb").read_text(encoding="utf-8"))
    return {"notebook": executed, "figures": figures}


def code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def assert_ran_and_saved_its_figures(result: dict, name: str) -> None:
    cells = code_cells(result["notebook"])
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert errors == []
    assert all(c["execution_count"] is not None for c in cells)
    shown = sum("image/png" in o.get("data", {}) for c in cells for o in c["outputs"])
    saved = sorted(result["figures"].glob("*.png"))
    assert {p.stem for p in saved} == FIGURES[name]
    assert shown == len(saved)
    for path in saved:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, path


def printed(notebook: dict) -> str:
    return "".join("".join(o.get("text", "")) for c in code_cells(notebook) for o in c["outputs"]
                   if o["output_type"] == "stream")


@pytest.mark.flink
@pytest.mark.integration
def test_explore_runs_on_the_archive_in_s3_and_saves_every_figure(archive, notebook_python):
    # GIVEN the job's archive and the labels in the bucket
    # WHEN the explore notebook is executed against them
    result = execute(notebook_python, "explore", archive["parameters"], archive["root"])
    # THEN every cell ran and every figure is a PNG
    assert_ran_and_saved_its_figures(result, "explore")
    # AND it read every scored window the job archived
    assert f"{len(archive['windows'])} scored windows" in printed(result["notebook"])


@pytest.mark.flink
@pytest.mark.integration
def test_retrain_publishes_a_forest_the_job_loads(archive, notebook_python):
    # GIVEN the job's archive and the labels in the bucket
    # WHEN the retrain notebook is executed, its hold-out the second simulated run
    parameters = {**archive["parameters"], "HOLDOUT_FROM": "2026-01-05T00:05:00Z"}
    result = execute(notebook_python, "retrain", parameters, archive["root"])
    # THEN every cell ran and every figure is a PNG
    assert_ran_and_saved_its_figures(result, "retrain")
    # AND exactly one version was published, and the pointer names it
    s3 = archive["s3"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/models/click-forest/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    versions = {k.split("/")[-2] for k in keys if k.endswith("/" + CARD)}
    assert len(versions) == 1
    version = versions.pop()
    pointer = s3.get_object(Bucket=BUCKET, Key=pointer_key(PREFIX, "click-forest"))
    assert read_pointer(pointer["Body"].read()) == ("click-forest", version)

    def read(file: str) -> bytes:
        key = f"{PREFIX}/models/click-forest/{version}/{file}"
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    # AND the card validates and its SHA-256 is the artefact's
    card = ModelCard.from_json(read(CARD))
    data = read(ARTEFACT)
    assert (card.name, card.version) == ("click-forest", version)
    assert card.sha256 == artifacts.sha256_of(data)
    assert card.inputs == (*FEATURE_NAMES, "score", "grade")
    assert 0.0 < card.threshold < 1.0
    assert card.training_range == {"start": "2026-01-04T23:59:50Z", "end": "2026-01-05T00:05:00Z"}
    assert card.library_versions["scikit-learn"] == sklearn.__version__
    assert card.library_versions["numpy"] == np.__version__
    assert card.metrics["holdout"]["anomalous"] > 0
    # AND in the job's virtualenv the artefact loads pinned to the card and scores windows built
    # in the card's input order
    forest = artifacts.loads(data, card.sha256)
    assert type(forest) is RandomForestClassifier and list(forest.classes_) == [0, 1]
    rows = np.array([[float(w[name]) for name in card.inputs] for w in archive["windows"]])
    probability = forest.predict_proba(rows)
    assert probability.shape == (len(rows), 2)
    assert np.allclose(probability.sum(axis=1), 1.0)
    assert (probability[:, 1] >= card.threshold).any()
    # AND it printed the hold-out comparison with the online detector
    text = printed(result["notebook"])
    assert "hold-out forest: precision" in text and "hold-out online detector: precision" in text


def cells(notebook: dict) -> list[tuple[str, str, list[str]]]:
    """Each cell's type, source and tags."""
    def source(cell):
        text = cell["source"]
        return "".join(text) if isinstance(text, list) else text

    return [(c["cell_type"], source(c), c.get("metadata", {}).get("tags", []))
            for c in notebook["cells"]]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_the_committed_notebook_is_stripped_and_is_its_py(name, notebook_python):
    # GIVEN the committed notebook and its jupytext pair
    committed = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    # WHEN jupytext converts the .py
    done = subprocess.run(
        [str(notebook_python), "-m", "jupytext", "--to", "ipynb", "--output", "-",
         str(NOTEBOOKS / f"{name}.py")],
        capture_output=True, text=True, check=True, timeout=120,
    )
    from_py = json.loads(done.stdout)
    # THEN the committed notebook has no outputs
    for cell in code_cells(committed):
        assert cell["outputs"] == [] and cell["execution_count"] is None
    # AND holds exactly the .py's cells, the parameters cell tagged
    assert cells(committed) == cells(from_py)
    assert any("parameters" in tags for _, _, tags in cells(committed))


def test_every_notebook_has_its_pair_and_a_test():
    # GIVEN the notebooks folder
    notebooks = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    # THEN each .ipynb has its .py, and each is executed by this module
    assert notebooks == set(FIGURES)
    assert all((NOTEBOOKS / f"{name}.py").exists() for name in notebooks)
