"""The README documents what the code declares: every setting, event field, reason, command."""

from pathlib import Path

import pytest

from flink_jobs.config import SETTINGS
from flink_jobs.events import ACTIONS, FIELDS
from localdev.cli import COMMANDS
from localdev.simulator import MALFORMED_KINDS
from models.features import FEATURE_NAMES

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.group != "simulator"],
                         ids=lambda s: f"{s.group}.{s.key}")
def test_every_job_setting_is_documented(setting):
    as_name = f"`{setting.group}.{setting.key}`"
    as_table_row = f"| `{setting.group}` | `{setting.key}` |"
    assert as_name in DOCS or as_table_row in DOCS


def test_every_event_field_action_and_feature_is_documented():
    for name in [f.name for f in FIELDS] + list(ACTIONS) + list(FEATURE_NAMES):
        assert f"`{name}`" in README, name


def test_every_dead_letter_reason_is_documented():
    for reason in {*(k.split(":")[0] for k in MALFORMED_KINDS), "late"}:
        assert f"`{reason}" in README, reason


def test_every_command_is_documented():
    for command in COMMANDS:
        assert f"`{command.name}" in README, command.name


def test_quick_start_has_exactly_the_two_set_up_commands():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]
