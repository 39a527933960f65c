"""Deploy the synthesised cloud assembly into moto server, as ``cdk deploy`` would into AWS.

``cdk deploy`` publishes the assembly's file assets to the bootstrap bucket, then creates the
stack from the template. :func:`deploy` does the same against a moto server endpoint: it makes
the bootstrap bucket and version parameter, uploads the assets that the resources moto creates
read (the Lambda's code), and creates the stack from the template's supported part
(:func:`supported_part`): every resource of a type moto's CloudFormation implements (streams,
bucket, DynamoDB tables, topics, queues, KMS key and alias, IAM roles and policies, log groups,
the Lambda function and its event source mapping, …) with its properties unchanged, minus the
few that refer to a resource moto cannot create (the dashboard names the alarms). The rest —
the Managed Flink application, Glue, alarms, Firehose, API Gateway stage and models,
topic/queue/bucket policies — is listed by :attr:`DeployedStack.skipped`.

Only ``boto3`` is needed: it runs in the project's virtualenv (tests, ``clicksentry``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

log = logging.getLogger(__name__)

STACK = "Clicksentry"
#: CDK's default bootstrap qualifier and the version its template's rule asks for.
BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "30"
#: Resource types whose properties point at an asset that must exist before creation.
CODE_READERS = {"AWS::Lambda::Function": ("Code", "S3Key")}
DONE = {"CREATE_COMPLETE"}
FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "ROLLBACK_IN_PROGRESS"}


@dataclass(frozen=True)
class DeployedStack:
    """A stack created in moto: its outputs and what moto created from the template."""

    name: str
    outputs: dict[str, str]
    resources: dict[str, tuple[str, str]]  # logical id -> (type, physical id)
    template_types: dict[str, str] = field(default_factory=dict)  # logical id -> type

    @property
    def skipped(self) -> dict[str, str]:
        """Template resources moto did not create (types its CloudFormation lacks)."""
        return {
            logical: kind
            for logical, kind in self.template_types.items()
            if logical not in self.resources
        }

    def physical(self, logical_prefix: str) -> str:
        """Physical id of the one created resource whose logical id starts with the prefix."""
        matches = [p for lid, (_, p) in self.resources.items() if lid.startswith(logical_prefix)]
        if len(matches) != 1:
            raise KeyError(f"{logical_prefix}: {len(matches)} resources match")
        return matches[0]

    def summary(self) -> str:
        """One line: how many resources of how many in the template, by type."""
        kinds = Counter(kind for kind, _ in self.resources.values())
        listed = ", ".join(f"{n} {k.split('::', 1)[1]}" for k, n in sorted(kinds.items()))
        return (
            f"moto created {len(self.resources)} of the template's {len(self.template_types)} "
            f"resources ({listed}); left out {len(self.skipped)} that moto's CloudFormation "
            f"lacks or that need one ({', '.join(sorted(set(self.skipped.values())))})"
        )


def _client(service: str, endpoint: str, region: str, credentials: dict[str, str]):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        config=Config(
            retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"}
        ),
        **credentials,
    )


def _substitute(text: str, account: str, region: str) -> str:
    return (
        text.replace("${AWS::AccountId}", account)
        .replace("${AWS::Region}", region)
        .replace("${AWS::Partition}", "aws")
    )


def _asset_keys_read(template: dict[str, Any]) -> set[str]:
    """Object keys of assets that resources read at creation (``CODE_READERS``)."""
    keys = set()
    for resource in template["Resources"].values():
        path = CODE_READERS.get(resource["Type"])
        if path:
            value: Any = resource.get("Properties", {})
            for step in path:
                value = value.get(step, {}) if isinstance(value, dict) else {}
            if isinstance(value, str):
                keys.add(value)
    return keys


def _references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (``Ref``, ``Fn::GetAtt``, ``${X}`` in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if isinstance(value, list):
                    found |= _references(value[1])
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def _needs(resource: dict[str, Any]) -> set[str]:
    """Logical ids a resource needs: its references and its ``DependsOn``."""
    depends = resource.get("DependsOn", [])
    return _references(resource.get("Properties", {})) | set(
        [depends] if isinstance(depends, str) else depends
    )


def supported_part(template: dict[str, Any], supported: set[str]) -> dict[str, Any]:
    """The template without the resources moto cannot create and those that need them.

    A resource that refers to, or depends on, a dropped resource is dropped too (the REST API's
    deployment needs its methods, which need the request models); the properties of the
    resources kept are not touched, and outputs that refer to a dropped resource are left out.
    """
    resources = template["Resources"]
    dropped = {lid for lid, r in resources.items() if r["Type"] not in supported}
    while True:
        more = {lid for lid, r in resources.items() if lid not in dropped and _needs(r) & dropped}
        if not more:
            break
        dropped |= more
    outputs = {
        name: output
        for name, output in template.get("Outputs", {}).items()
        if not _references(output) & dropped
    }
    kept = {lid: r for lid, r in resources.items() if lid not in dropped}
    return {**template, "Resources": kept, "Outputs": outputs}


def moto_resource_types() -> set[str]:
    """The resource types moto's CloudFormation implements (moto is a dev dependency)."""
    from moto.cloudformation.parsing import get_model_map

    return set(get_model_map())


def publish_assets(
    assembly: Path, stack: str, s3, account: str, region: str, template: dict[str, Any]
) -> list[str]:
    """Upload the file assets that the template's resources read to the bootstrap bucket.

    Returns the object keys uploaded.
    """
    manifest = json.loads((assembly / f"{stack}.assets.json").read_text())
    wanted = _asset_keys_read(template)
    uploaded = []
    for asset in manifest.get("files", {}).values():
        source = assembly / asset["source"]["path"]
        for destination in asset["destinations"].values():
            bucket = _substitute(destination["bucketName"], account, region)
            key = destination["objectKey"]
            if key not in wanted:
                continue
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket)
            s3.upload_file(str(source), bucket, key)
            uploaded.append(key)
            log.info("published %s to s3://%s/%s", source.name, bucket, key)
    return uploaded


def deploy(
    assembly: Path,
    endpoint: str,
    *,
    stack: str = STACK,
    region: str = "us-east-1",
    credentials: dict[str, str] | None = None,
    parameters: dict[str, str] | None = None,
    timeout_s: float = 180.0,
) -> DeployedStack:
    """Create (or reuse, when it exists) ``stack`` from the assembly in moto at ``endpoint``."""
    credentials = credentials or {
        "aws_access_key_id": "clicksentry",
        "aws_secret_access_key": "clicksentry",
    }
    cfn = _client("cloudformation", endpoint, region, credentials)
    account = _client("sts", endpoint, region, credentials).get_caller_identity()["Account"]
    template = json.loads((assembly / f"{stack}.template.json").read_text())
    part = supported_part(template, moto_resource_types())
    if not _exists(cfn, stack):
        publish_assets(
            assembly, stack, _client("s3", endpoint, region, credentials), account, region, part
        )
        _client("ssm", endpoint, region, credentials).put_parameter(
            Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version",
            Value=BOOTSTRAP_VERSION,
            Type="String",
            Overwrite=True,
        )
        cfn.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(part),
            Parameters=[
                {"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()
            ],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
    described = _wait(cfn, stack, timeout_s)
    resources = {
        r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
        for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]
    }
    deployed = DeployedStack(
        name=stack,
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        resources=resources,
        template_types={lid: r["Type"] for lid, r in template["Resources"].items()},
    )
    log.info("%s", deployed.summary())
    return deployed


def _exists(cfn, stack: str) -> bool:
    """True when ``stack`` was created before; one that failed is deleted first."""
    try:
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except cfn.exceptions.ClientError:
        return False
    if status in DONE:
        return True
    log.warning("stack %s is %s: deleting it to create it again", stack, status)
    cfn.delete_stack(StackName=stack)
    return False


def _wait(cfn, stack: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = described["StackStatus"]
        if status in DONE:
            return described
        if status in FAILED:
            events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
            reasons = [
                f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
                for e in events
                if e.get("ResourceStatusReason")
            ]
            raise RuntimeError(f"stack {stack} {status}: " + "; ".join(reasons[:5]))
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack {stack} still {status} after {timeout_s:.0f}s")
        time.sleep(0.5)
