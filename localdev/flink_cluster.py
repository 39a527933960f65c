"""A standalone Flink session cluster on loopback, from the ``apache-flink`` package's own scripts.

One JobManager and N TaskManagers, each started with ``bin/jobmanager.sh start-foreground`` /
``bin/taskmanager.sh start-foreground`` from the installed PyFlink (which ``exec`` the JVM, so
the PID of the child process is the JVM's) with its own ``FLINK_CONF_DIR`` (a generated
``config.yaml``: Flink 1.20 reads ``config.yaml`` when no legacy ``flink-conf.yaml`` is in the
directory) and its own log directory. Jobs are submitted the way Managed Flink runs the
application zip: ``flink run -d -py main.py -pyfs dep/ --jarfile lib/...jar``; their state is
read from the REST API. Everything started is stopped by PID (:meth:`FlinkCluster.stop`), and a
TaskManager can be ``kill -9``-ed and replaced (:meth:`FlinkCluster.kill_taskmanager`,
:meth:`FlinkCluster.start_taskmanager`).

Typical use (the fault-injection tests, ``tests/faults/``)::

    cluster = FlinkCluster(root, ClusterPorts.free(taskmanagers=2), options={...}, env={...})
    cluster.start()
    try:
        job = cluster.submit(Application(app_dir), env={"CLICKSENTRY_PROPERTIES": "..."})
        cluster.wait_running(job)
        savepoint = cluster.stop_with_savepoint(job)
        job = cluster.submit(Application(app_dir), env={...}, savepoint=savepoint)
        ...
    finally:
        cluster.stop()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 20.0
#: Log lines worth showing in a failure message.
_NOTABLE = re.compile(r" (WARN|ERROR) |^Caused by: |switched from \w+ to (FAILED|RESTARTING)")
#: Job states after which a job never runs again.
TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "CANCELED"})


def flink_home() -> Path:
    """The Flink distribution inside the installed ``apache-flink`` package (``pyflink/``).

    >>> (flink_home() / "bin" / "jobmanager.sh").is_file()
    True
    """
    import pyflink

    return Path(pyflink.__path__[0])


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now.

    >>> 1024 <= free_port() <= 65535
    True
    """
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class TaskManagerPorts:
    """The ports one TaskManager listens on."""

    rpc: int
    data: int

    @classmethod
    def free(cls) -> TaskManagerPorts:
        """Two ports free right now."""
        return cls(free_port(), free_port())


@dataclass(frozen=True)
class ClusterPorts:
    """Every port of the cluster: REST, JobManager RPC, blob server, and each TaskManager's."""

    rest: int
    rpc: int
    blob: int
    taskmanagers: tuple[TaskManagerPorts, ...]

    @classmethod
    def free(cls, taskmanagers: int = 2) -> ClusterPorts:
        """Ports free right now for a JobManager and ``taskmanagers`` TaskManagers.

        >>> ports = ClusterPorts.free(taskmanagers=2)
        >>> len(ports.taskmanagers), len({ports.rest, ports.rpc, ports.blob})
        (2, 3)
        """
        return cls(
            free_port(),
            free_port(),
            free_port(),
            tuple(TaskManagerPorts.free() for _ in range(taskmanagers)),
        )


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mappings as Flink's flat ``a.b.c`` keys.

    >>> flatten({"env": {"java": {"opts": {"all": "-X"}}}, "parallelism.default": 1})
    {'env.java.opts.all': '-X', 'parallelism.default': 1}
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def render_config(options: Mapping[str, Any]) -> str:
    """A ``config.yaml`` of flat keys; each value a JSON scalar (valid YAML), sorted by key.

    >>> print(render_config({"rest.port": 8081, "s3.endpoint": "http://127.0.0.1:4566"}), end="")
    rest.port: 8081
    s3.endpoint: "http://127.0.0.1:4566"
    """
    return "".join(f"{key}: {json.dumps(options[key])}\n" for key in sorted(options))


def shipped_options() -> dict[str, Any]:
    """The package's own ``conf/config.yaml`` (its JVM flags for Java 17 among them), flat."""
    from ruamel.yaml import YAML  # PyFlink's own YAML dependency

    return flatten(YAML(typ="safe").load(flink_home() / "conf" / "config.yaml") or {})


def job_id_from(output: str) -> str:
    """The job id ``flink run -d`` prints.

    >>> job_id_from("Job has been submitted with JobID 4f1c0b9d8e7a6b5c4d3e2f1a0b9c8d7e")
    '4f1c0b9d8e7a6b5c4d3e2f1a0b9c8d7e'
    """
    match = re.search(r"JobID ([0-9a-f]{32})", output)
    if match is None:
        raise RuntimeError(f"no job id in the output of flink run:\n{output[-3000:]}")
    return match[1]


def savepoint_from(output: str) -> str:
    """The savepoint path ``flink stop --savepointPath`` prints.

    >>> savepoint_from("Savepoint completed. Path: file:/tmp/sp/savepoint-4f1c0b-0123abcd")
    'file:/tmp/sp/savepoint-4f1c0b-0123abcd'
    """
    match = re.search(r"Savepoint completed\. Path: (\S+)", output)
    if match is None:
        raise RuntimeError(f"no savepoint path in the output of flink stop:\n{output[-3000:]}")
    return match[1]


def _kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (each Flink process starts its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Application:
    """An unpacked Managed Flink application zip: ``main.py``, ``dep/``, ``lib/*.jar``."""

    root: Path

    @property
    def main(self) -> Path:
        """Run option ``python``."""
        return self.root / "main.py"

    @property
    def py_files(self) -> Path:
        """Run option ``pyFiles``."""
        return self.root / "dep"

    @property
    def jar(self) -> Path:
        """Run option ``jarfile``."""
        return self.root / "lib" / "pyflink-dependencies.jar"


class FlinkRest:
    """The REST API of a Flink cluster (or a local minicluster with ``rest.port`` set)."""

    def __init__(self, rest_url: str) -> None:
        self._rest_url = rest_url

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API."""
        return self._rest_url

    def rest(self, path: str, method: str = "GET", body: Mapping | None = None) -> Any:
        """One REST call; the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.rest_url + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def job(self, job_id: str) -> dict:
        """``/jobs/<id>``: state, vertices (with their tasks' states), timestamps."""
        return self.rest(f"/jobs/{job_id}")

    def state(self, job_id: str) -> str:
        """The job's state (``RUNNING``, ``RESTARTING``, ``FINISHED`` …)."""
        return self.job(job_id)["state"]

    def checkpoints(self, job_id: str) -> dict:
        """``/jobs/<id>/checkpoints``: counts, latest completed/restored, history."""
        return self.rest(f"/jobs/{job_id}/checkpoints")

    def user_metrics(self, job_id: str, group: str) -> dict[str, int]:
        """The job's metrics of the user group ``group``: ``{name: value}``.

        Each is summed over every subtask and every operator that registers it.
        """
        totals: dict[str, int] = {}
        marker = f".{group}."
        for vertex in self.job(job_id)["vertices"]:
            path = f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
            ids = [m["id"] for m in self.rest(path) if marker in m["id"]]
            if not ids:
                continue
            query = urllib.parse.urlencode({"get": ",".join(ids), "agg": "sum"})
            for metric in self.rest(f"{path}?{query}"):
                name = metric["id"].rsplit(marker, 1)[1]
                totals[name] = totals.get(name, 0) + int(metric["sum"])
        return totals


@dataclass
class _Process:
    """One JVM this cluster started: its name and child process."""

    name: str
    process: subprocess.Popen


@dataclass
class FlinkCluster(FlinkRest):
    """A standalone session cluster below ``root`` (``conf-*/``, ``log/``, ``checkpoints/``…).

    Args:
        root: an empty working directory (the caller's temporary directory).
        ports: every port, chosen by the caller (:meth:`ClusterPorts.free`).
        options: Flink settings on top of the cluster's own (e.g. ``s3.*``); ``env.java.opts.all``
            here is appended to the package's JVM flags.
        env: environment of every Flink process on top of this process's (e.g. credentials).
        python: the Python of the client and of the Python workers.
        slots: task slots per TaskManager.
        plugins_dir: the plugins directory (``FLINK_PLUGINS_DIR``), e.g. with ``s3-fs-hadoop/``.
    """

    root: Path
    ports: ClusterPorts
    options: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    python: Path = Path(sys.executable)
    slots: int = 2
    plugins_dir: Path | None = None
    _jobmanager: _Process | None = field(default=None, init=False)
    _taskmanagers: list[_Process] = field(default_factory=list, init=False)
    _started_tm: int = field(default=0, init=False)

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API."""
        return f"http://{HOST}:{self.ports.rest}"

    @property
    def checkpoint_dir(self) -> Path:
        """``execution.checkpointing.dir`` of every job."""
        return self.root / "checkpoints"

    @property
    def savepoint_dir(self) -> Path:
        """Where :meth:`stop_with_savepoint` writes savepoints."""
        return self.root / "savepoints"

    @property
    def log_dir(self) -> Path:
        """Every process's logs (``FLINK_LOG_DIR``) and the clients' output."""
        return self.root / "log"

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the Flink processes started and still running, by name."""
        running = [p for p in (self._jobmanager, *self._taskmanagers) if p is not None]
        return {p.name: p.process.pid for p in running if p.process.poll() is None}

    def cluster_options(self) -> dict[str, Any]:
        """The cluster's ``config.yaml`` settings (before each process's own ports)."""
        shipped = shipped_options()
        extra = dict(self.options)
        java_opts = " ".join(
            o for o in (shipped.get("env.java.opts.all", ""), extra.pop("env.java.opts.all", ""))
            if o
        )
        return {
            **shipped,
            "env.java.opts.all": java_opts,
            "jobmanager.rpc.address": HOST,
            "jobmanager.rpc.port": self.ports.rpc,
            "jobmanager.bind-host": HOST,
            # every job and every restart loads the application jar (AWS SDKs included) into a
            # new class loader, and the SDKs keep some alive: room for a test session's jobs
            "jobmanager.memory.process.size": "1280m",
            "jobmanager.memory.jvm-metaspace.size": "512m",
            "rest.address": HOST,
            "rest.bind-address": HOST,
            "rest.port": self.ports.rest,
            "blob.server.port": str(self.ports.blob),
            "taskmanager.host": HOST,
            "taskmanager.bind-host": HOST,
            "taskmanager.numberOfTaskSlots": self.slots,
            "taskmanager.memory.process.size": "2700m",
            "taskmanager.memory.jvm-metaspace.size": "1024m",
            # the Kinesis connector's AWS SDK (netty) allocates direct buffers outside Flink's
            # network memory, and a session's jobs leave some behind: without this room the
            # sixth job of the fault suite failed with "Cannot reserve … direct buffer memory"
            "taskmanager.memory.task.off-heap.size": "256m",
            "cluster.evenly-spread-out-slots": "true",
            "heartbeat.interval": "2000",
            "metrics.fetcher.update-interval": "1000",  # REST answers with fresh metrics
            "heartbeat.timeout": "20000",
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "10",
            "restart-strategy.fixed-delay.delay": "3 s",
            "execution.checkpointing.dir": self.checkpoint_dir.as_uri(),
            "execution.checkpointing.savepoint-dir": self.savepoint_dir.as_uri(),
            "io.tmp.dirs": str(self.root / "tmp"),
            "python.executable": str(self.python),
            "python.client.executable": str(self.python),
            **extra,
        }

    def _conf_dir(self, name: str, own: Mapping[str, Any]) -> Path:
        """A conf directory for one process: the package's logging files and a ``config.yaml``."""
        conf = self.root / f"conf-{name}"
        conf.mkdir(parents=True, exist_ok=True)
        for path in (flink_home() / "conf").iterdir():
            if path.name.startswith(("log4j", "logback")):
                shutil.copy(path, conf / path.name)
        (conf / "config.yaml").write_text(render_config({**self.cluster_options(), **own}))
        return conf

    def _environment(self, conf: Path) -> dict[str, str]:
        """The environment of a Flink script: this process's, the caller's, this cluster's dirs."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYFLINK_GATEWAY_DISABLED", "JVM_ARGS", "FLINK_CONF_DIR", "PYTHONPATH"}
        }
        env |= dict(self.env)
        env |= {
            "FLINK_HOME": str(flink_home()),
            "FLINK_CONF_DIR": str(conf),
            "FLINK_LOG_DIR": str(self.log_dir),
            "FLINK_PID_DIR": str(self.root / "pid"),
        }
        if self.plugins_dir is not None:
            env["FLINK_PLUGINS_DIR"] = str(self.plugins_dir)
        return env

    def _launch(self, name: str, script: str, own: Mapping[str, Any]) -> _Process:
        conf = self._conf_dir(name, own)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        with (self.log_dir / f"{name}.out").open("w") as out:
            process = subprocess.Popen(
                [str(flink_home() / "bin" / script), "start-foreground"],
                env=self._environment(conf),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.root,  # not the caller's: `python -m` workers put their cwd on sys.path
            )
        log.info("started %s (pid %d, conf %s)", name, process.pid, conf)
        return _Process(name, process)

    def start(self) -> None:
        """Start the JobManager and one TaskManager per port pair; wait until all slots exist."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobmanager = self._launch("jobmanager", "jobmanager.sh", {})
        try:
            self.wait_rest()
            for ports in self.ports.taskmanagers:
                self.start_taskmanager(ports)
            self.wait_taskmanagers(len(self.ports.taskmanagers))
        except BaseException:
            self.stop()
            raise

    def start_taskmanager(self, ports: TaskManagerPorts) -> str:
        """Start one more TaskManager on ``ports``; returns its name (``taskmanager-<n>``)."""
        name = f"taskmanager-{self._started_tm}"
        self._started_tm += 1
        own = {
            "taskmanager.rpc.port": str(ports.rpc),
            "taskmanager.data.port": ports.data,
            "taskmanager.resource-id": name,
        }
        self._taskmanagers.append(self._launch(name, "taskmanager.sh", own))
        return name

    def replace_dead_taskmanagers(self) -> list[str]:
        """Start a TaskManager (on free ports) for each one that died; returns the new names.

        Waits until the JobManager knows exactly the live ones (it forgets a dead one after the
        heartbeat timeout).
        """
        alive = [p for p in self._taskmanagers if p.process.poll() is None]
        dead = len(self.ports.taskmanagers) - len(alive)
        started = [self.start_taskmanager(TaskManagerPorts.free()) for _ in range(dead)]
        self._wait(
            f"{len(self.ports.taskmanagers)} live TaskManagers",
            lambda: {tm["id"] for tm in self.rest("/taskmanagers")["taskmanagers"]}
            == {p.name for p in self._taskmanagers if p.process.poll() is None},
            timeout_s=120,
        )
        return started

    def kill_taskmanager(self, name: str) -> int:
        """``kill -9`` the TaskManager ``name``; returns its PID.

        The whole process group goes, the JVM and its Python workers, as when a machine dies.
        """
        (victim,) = [p for p in self._taskmanagers if p.name == name]
        _kill_group(victim.process.pid)
        victim.process.wait()
        log.info("killed %s (pid %d) and its process group with SIGKILL", name,
                 victim.process.pid)
        return victim.process.pid

    def stop(self) -> None:
        """Stop every process this cluster started, TaskManagers first (SIGTERM, then SIGKILL)."""
        for proc in [*reversed(self._taskmanagers), self._jobmanager]:
            if proc is None or proc.process.poll() is not None:
                continue
            proc.process.terminate()
            try:
                proc.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM; killing it", proc.name, proc.process.pid)
            _kill_group(proc.process.pid)  # the JVM if it hangs, and Python workers it left
            proc.process.wait()
            log.info("stopped %s (pid %d)", proc.name, proc.process.pid)

    # --- REST -------------------------------------------------------------------------------

    def _wait(self, what: str, ready, timeout_s: float, interval_s: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._jobmanager is not None and self._jobmanager.process.poll() is not None:
                raise RuntimeError(f"the JobManager exited while waiting for {what}:\n"
                                   + self.log_tail())
            try:
                value = ready()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout_s:.0f} s\n{self.log_tail()}")
            time.sleep(interval_s)

    def wait_rest(self, timeout_s: float = 120) -> None:
        """Wait until the REST API answers."""
        self._wait("REST API", lambda: self.rest("/overview"), timeout_s)

    def wait_taskmanagers(self, count: int, timeout_s: float = 120) -> None:
        """Wait until ``count`` TaskManagers are registered."""
        self._wait(
            f"{count} TaskManagers",
            lambda: self.rest("/overview")["taskmanagers"] >= count,
            timeout_s,
        )

    def restarts(self, job_id: str) -> int:
        """How often the job restarted (its ``numRestarts`` metric)."""
        (metric,) = self.rest(f"/jobs/{job_id}/metrics?get=numRestarts")
        return int(metric["value"])

    def exceptions(self, job_id: str) -> list[dict]:
        """The job's exception history (root causes of failures), newest first."""
        return self.rest(f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]

    def subtask_hosts(self, job_id: str) -> dict[str, set[str]]:
        """TaskManager ids running at least one subtask of the job, by vertex name."""
        hosts: dict[str, set[str]] = {}
        for vertex in self.job(job_id)["vertices"]:
            answer = self.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")
            hosts[vertex["name"]] = {tm["taskmanager-id"] for tm in answer["taskmanagers"]}
        return hosts

    def wait_running(self, job_id: str, timeout_s: float = 180) -> None:
        """Wait until every task of the job runs (the job's state alone says RUNNING earlier)."""

        def all_running() -> bool:
            job = self.job(job_id)
            if job["state"] in TERMINAL_STATES:
                raise RuntimeError(f"job {job_id} is {job['state']}:\n{self.log_tail()}")
            tasks = [v["tasks"] for v in job["vertices"]]
            return job["state"] == "RUNNING" and all(
                t.get("RUNNING", 0) == sum(t.values()) for t in tasks
            )

        self._wait(f"job {job_id} running", all_running, timeout_s)

    def wait_checkpoint(self, job_id: str, after: int = 0, timeout_s: float = 120) -> int:
        """Wait for a completed checkpoint with an id above ``after``; returns its id."""

        def latest() -> int | None:
            completed = self.checkpoints(job_id)["latest"]["completed"]
            return completed["id"] if completed and completed["id"] > after else None

        return self._wait(f"a checkpoint of {job_id} after {after}", latest, timeout_s)

    # --- CLI --------------------------------------------------------------------------------

    def flink(self, *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 300,
              log_name: str = "client") -> str:
        """Run ``bin/flink`` against this cluster; returns its output (raises if it fails)."""
        conf = self._conf_dir("client", {})
        command = [str(flink_home() / "bin" / "flink"), *args]
        result = subprocess.run(
            command,
            env={**self._environment(conf), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=self.root,
        )
        output = result.stdout + result.stderr
        with (self.log_dir / f"{log_name}.out").open("a") as client_log:
            client_log.write(f"$ {' '.join(command)}\n{output}\n")
        if result.returncode != 0:
            raise RuntimeError(f"flink {args[0]} exited {result.returncode}:\n{output[-5000:]}")
        return output

    def submit(
        self,
        app: Application,
        env: Mapping[str, str] | None = None,
        savepoint: str | None = None,
    ) -> str:
        """``flink run -d`` the application as Managed Flink does; returns the job id.

        Args:
            app: the unpacked application zip.
            env: the client's extra environment (``CLICKSENTRY_PROPERTIES`` …).
            savepoint: a savepoint to restore (``-s``).
        """
        restore = ("--fromSavepoint", savepoint) if savepoint else ()
        output = self.flink(
            "run",
            "--detached",
            *restore,
            "--python", str(app.main),
            "--pyFiles", str(app.py_files),
            "--jarfile", str(app.jar),
            "--pyExecutable", str(self.python),
            "--pyClientExecutable", str(self.python),
            env=env,
        )
        job_id = job_id_from(output)
        log.info("submitted %s as job %s%s", app.main, job_id,
                 f" from {savepoint}" if savepoint else "")
        return job_id

    def stop_with_savepoint(self, job_id: str) -> str:
        """``flink stop --savepointPath``: savepoint, then finish the job; returns the path."""
        path = savepoint_from(
            self.flink("stop", "--savepointPath", self.savepoint_dir.as_uri(), job_id)
        )
        log.info("stopped job %s with savepoint %s", job_id, path)
        return path

    def cancel(self, job_id: str) -> None:
        """Cancel the job unless it already ended; wait until it has."""
        if self.state(job_id) not in TERMINAL_STATES:
            self.rest(f"/jobs/{job_id}", method="PATCH")
        self._wait(f"job {job_id} ended", lambda: self.state(job_id) in TERMINAL_STATES, 60)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the story, for failure messages.

        The last warnings, errors and causes in every process's log, and the end of the
        clients' output.
        """
        if not self.log_dir.is_dir():
            return ""
        parts = []
        for path in sorted(self.log_dir.iterdir()):
            if path.suffix == ".log":
                text = path.read_text(errors="replace").splitlines()
                tail = [t for t in text if _NOTABLE.search(t)][-lines:]
            elif path.name.startswith("client"):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            else:
                continue
            parts.append(f"==> {path.name} <==\n" + "\n".join(t[:400] for t in tail))
        return "\n".join(parts)
