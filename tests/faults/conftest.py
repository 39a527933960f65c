"""Fixtures of the fault-injection suite: one standalone Flink cluster (a JobManager and two
TaskManagers) and the unpacked Managed Flink application for the session, the failure-free run
every case is compared with (once a session), and per case its own streams and archive prefix."""

from __future__ import annotations

import zipfile

import pytest
from fault_runs import RESULTS, CaseRun, create_case, delete_case, run_through, simulation

from flink_jobs import aws_connectors
from localdev.flink_cluster import Application, ClusterPorts, FlinkCluster


@pytest.fixture(scope="session")
def flink_cluster(aws_stack, tmp_path_factory):
    """A running standalone cluster set up for the emulators (stopped, by PID, at the end).

    Like Managed Flink, the cluster brings the S3 file system (the ``flink-s3-fs-hadoop`` plugin
    from ``make jar``, pointed at moto server) and its processes carry the credentials; the AWS
    SDKs of the Kinesis connector speak JSON, not CBOR, to kinesis-mock.
    """
    keys = (aws_stack.access_key_id, aws_stack.secret_access_key)
    cluster = FlinkCluster(
        root=tmp_path_factory.mktemp("flink-cluster"),
        ports=ClusterPorts.free(taskmanagers=2),
        options={
            **aws_connectors.s3_options(aws_stack.moto_endpoint, *keys),
            "env.java.opts.all": aws_connectors.CBOR_OFF_JVM_FLAG,
        },
        env={
            "AWS_CBOR_DISABLE": "true",
            "AWS_ACCESS_KEY_ID": keys[0],
            "AWS_SECRET_ACCESS_KEY": keys[1],
            "AWS_REGION": aws_stack.region,
        },
        plugins_dir=aws_connectors.PLUGINS_DIR,
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def application(managed_flink_zip, tmp_path_factory) -> Application:
    """The Managed Flink zip, unpacked: ``main.py``, ``dep/``, ``lib/pyflink-dependencies.jar``."""
    root = tmp_path_factory.mktemp("managed-flink-app")
    with zipfile.ZipFile(managed_flink_zip) as archive:
        archive.extractall(root)
    return Application(root)


@pytest.fixture(scope="session")
def failure_free(flink_cluster, application, aws_stack, tmp_path_factory):
    """The simulated stream through the job on the cluster without faults (once a session)."""
    case = create_case(aws_stack, tmp_path_factory.mktemp("failure-free"), "failure-free")
    run = CaseRun(flink_cluster, application, aws_stack, case)
    try:
        result = run_through(run, simulation().lines)
        result.metrics = run.settled_metrics(run.job_ids[-1], result.outputs)
    finally:
        run.close()
        delete_case(aws_stack, case)
    assert result.outputs.consumed(result.produced, result.flushes), result.message(
        "the failure-free run did not consume its input"
    )
    assert result.outputs.anomaly_ids, result.message("the failure-free run flagged nothing")
    return result


@pytest.fixture
def case_run(flink_cluster, application, aws_stack, tmp_path):
    """``case_run(name, kinesis_endpoint=None, settings=None)``: a :class:`CaseRun` on its own
    streams and archive prefix; its jobs are cancelled and its streams deleted afterwards."""
    flink_cluster.replace_dead_taskmanagers()  # a case before may have killed or crashed one
    runs: list[CaseRun] = []

    def make(name: str, kinesis_endpoint: str | None = None, settings=None) -> CaseRun:
        case = create_case(aws_stack, tmp_path / name, name, kinesis_endpoint, settings)
        runs.append(CaseRun(flink_cluster, application, aws_stack, case))
        return runs[-1]

    yield make
    for run in runs:
        run.close()
        delete_case(aws_stack, run.case)


def pytest_terminal_summary(terminalreporter):
    """Print what every case run produced and consumed, whether its test passed or not."""
    if not RESULTS:
        return
    terminalreporter.section("fault cases: counts per run")
    for name, counts in RESULTS:
        terminalreporter.write_line(f"{name}: {counts}")
