"""Where the AWS connector jar and the S3 file-system plugin live, and how a local JVM uses them.

The Kinesis SQL connector and its AWS SDKs come from ``deploy/target/pyflink-dependencies.jar``
(``make jar``), added to a local job through ``pipeline.jars`` (and :func:`add_jar_to_planner`);
on Managed Flink the same jar is ``lib/pyflink-dependencies.jar`` in the application zip
(run option ``jarfile``). ``s3://`` needs the
``flink-s3-fs-hadoop`` plugin: Managed Flink brings it, a local minicluster does not load plugins
by itself, so :func:`initialize_filesystems` does what a Flink cluster does at start-up.

Talking to emulators needs three things from the JVM, all set before PyFlink starts it
(:func:`prepare_local_jvm`): CBOR off for both AWS SDKs the connector uses (``AWS_CBOR_DISABLE``
for v1, ``-Daws.cborEnabled=false`` for v2 — kinesis-mock's plain HTTP port speaks JSON),
credentials in the environment, and the plugins directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
#: Where the jar is: built in this checkout, or ``lib/`` beside ``dep/`` in the Managed Flink zip.
JAR_CANDIDATES = (
    ROOT / "deploy" / "target" / "pyflink-dependencies.jar",
    ROOT.parent / "lib" / "pyflink-dependencies.jar",
)
CONNECTOR_JAR = next((jar for jar in JAR_CANDIDATES if jar.is_file()), JAR_CANDIDATES[0])
PLUGINS_DIR = ROOT / "deploy" / "target" / "plugins"
CBOR_OFF_JVM_FLAG = "-Daws.cborEnabled=false"


def jar_url(jar: Path = CONNECTOR_JAR) -> str:
    """The ``pipeline.jars`` value for the connector jar; fails naming ``make jar`` if missing.

    >>> jar_url(Path("/etc/hostname")).startswith("file:///")
    True
    """
    if not jar.is_file():
        raise FileNotFoundError(f"connector jar {jar} not found; build it with `make jar`")
    return jar.resolve().as_uri()


def add_jar_to_planner(url: str) -> None:
    """Make the connector jar visible to table environments created after this call.

    A ``StreamTableEnvironment`` resolves connector factories with a class loader fixed when it
    is created, so ``pipeline.jars`` set afterwards reaches the job but not the planner. Call
    this before the environment is created, and set ``pipeline.jars`` on it afterwards.
    """
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    add_jars_to_context_class_loader([url])


def prepare_local_jvm(
    access_key_id: str, secret_access_key: str, environ: dict[str, str] | None = None
) -> None:
    """Set the environment the PyFlink gateway JVM inherits to reach local emulators.

    Must run before the first Flink environment of the process is created. Idempotent.

    >>> env = {}
    >>> prepare_local_jvm("k", "s", env)
    >>> env["AWS_CBOR_DISABLE"], env["JVM_ARGS"], env["AWS_ACCESS_KEY_ID"]
    ('true', '-Daws.cborEnabled=false', 'k')
    """
    env = os.environ if environ is None else environ
    env["AWS_CBOR_DISABLE"] = "true"
    jvm_args = env.get("JVM_ARGS", "")
    if CBOR_OFF_JVM_FLAG not in jvm_args.split():
        env["JVM_ARGS"] = f"{jvm_args} {CBOR_OFF_JVM_FLAG}".strip()
    env.setdefault("AWS_ACCESS_KEY_ID", access_key_id)
    env.setdefault("AWS_SECRET_ACCESS_KEY", secret_access_key)
    if PLUGINS_DIR.is_dir():
        # PyFlink overwrites FLINK_PLUGINS_DIR unless FLINK_HOME is set: pin both.
        import pyflink

        env.setdefault("FLINK_HOME", str(Path(pyflink.__path__[0])))
        env["FLINK_PLUGINS_DIR"] = str(PLUGINS_DIR)


def s3_options(endpoint: str, access_key_id: str, secret_access_key: str) -> dict[str, str]:
    """Flink configuration for ``s3://`` on an S3-compatible endpoint with path-style access.

    >>> s3_options("http://127.0.0.1:4566", "k", "s")["s3.path.style.access"]
    'true'
    """
    return {
        "s3.endpoint": endpoint,
        "s3.path.style.access": "true",
        "s3.access-key": access_key_id,
        "s3.secret-key": secret_access_key,
    }


def initialize_filesystems(options: Mapping[str, str]) -> None:
    """Load file-system plugins (``FLINK_PLUGINS_DIR``) with ``options``, as a cluster would.

    Call after the Flink environment exists and before the job runs. A no-op for the options if
    no plugin directory was prepared (``s3://`` then fails naming the missing plugin).
    """
    from pyflink.common import Configuration
    from pyflink.java_gateway import get_gateway

    config = Configuration()
    for key, value in options.items():
        config.set_string(key, value)
    jvm = get_gateway().jvm
    plugins = jvm.org.apache.flink.core.plugin.PluginUtils.createPluginManagerFromRootFolder(
        config._j_configuration
    )
    jvm.org.apache.flink.core.fs.FileSystem.initialize(config._j_configuration, plugins)
    log.info("file systems initialised from plugins in %s", os.environ.get("FLINK_PLUGINS_DIR"))
