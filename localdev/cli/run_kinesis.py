"""``clicksentry run`` with ``job.source = kinesis``: the job on Kinesis and S3, locally.

The job runs on a local minicluster, reading the clicks stream and writing the anomalies stream
and the S3 archive until interrupted (Ctrl-C cancels it).
"""

from __future__ import annotations

from flink_jobs import aws_connectors, kinesis_job, kinesis_tables
from localdev import stack


def main(config) -> int:
    """Start the job from ``config`` and wait; Ctrl-C cancels it. Exit 2 on a bad setting."""
    try:
        settings = kinesis_tables.settings_from(config.values)
        aws_connectors.jar_url()  # fails naming `make jar` if it is missing
        print(f"reading {settings.clicks.arn}")
        print(f"anomalies to {settings.anomalies.arn}, archive to {settings.archive}")
        result = kinesis_job.start(config, local=True, credentials=stack.credentials())
    except (kinesis_tables.SettingError, FileNotFoundError) as err:
        print(f"configuration error: {err}")
        return 2
    job = result.get_job_client()
    print(f"job {job.get_job_id()} running; Ctrl-C stops it", flush=True)
    try:
        result.wait()
    except KeyboardInterrupt:
        job.cancel().result()
        print("job cancelled")
    return 0
