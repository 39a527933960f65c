"""Checkov and cfn-lint suppressions, each written next to the resource with its reason.

A suppression lands in the resource's ``Metadata`` (``checkov.skip`` with a ``comment``;
``cfn-lint.config.ignore_checks``), so the reason travels with the synthesised template and
``make infra-check`` prints it.
"""

from __future__ import annotations

import aws_cdk as cdk


def skip_checkov(resource: cdk.CfnResource, **reasons: str) -> None:
    """Skip checkov checks on ``resource``: ``CKV_AWS_117="why"``; a reason is required."""
    if not reasons or not all(r.strip() for r in reasons.values()):
        raise ValueError("every checkov suppression needs a reason")
    current = resource.get_metadata("checkov") or {"skip": []}
    current["skip"] = current["skip"] + [
        {"id": check, "comment": reason} for check, reason in sorted(reasons.items())
    ]
    resource.add_metadata("checkov", current)


def skip_cfn_lint(resource: cdk.CfnResource, **reasons: str) -> None:
    """Skip cfn-lint rules on ``resource``: ``W3005="why"``; a reason is required."""
    if not reasons or not all(r.strip() for r in reasons.values()):
        raise ValueError("every cfn-lint suppression needs a reason")
    resource.add_metadata(
        "cfn-lint",
        {
            "config": {"ignore_checks": sorted(reasons)},
            "reasons": dict(sorted(reasons.items())),
        },
    )
