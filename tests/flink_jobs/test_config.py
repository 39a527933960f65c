import json

import pytest

from flink_jobs.config import ConfigError, load_config


@pytest.fixture
def properties(tmp_path):
    def write(groups):
        path = tmp_path / "application_properties.json"
        path.write_text(json.dumps(
            [{"PropertyGroupId": g, "PropertyMap": m} for g, m in groups.items()]
        ))
        return path
    return write


def test_reads_managed_flink_property_groups(properties):
    path = properties({"job": {"parallelism": "3"}, "scoring": {"detector": "rcf-kda"}})
    config = load_config(path)
    assert config.get("job", "parallelism") == 3
    assert config.get("scoring", "detector") == "rcf-kda"
    assert config.get("job", "watermark_delay_ms") == 5000  # default


def test_overrides_win_over_the_file(properties):
    path = properties({"job": {"parallelism": "3"}})
    assert load_config(path, {"job": {"parallelism": "1"}}).get("job", "parallelism") == 1


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"job": {"parallelism": "0"}}, "job.parallelism: must be >= 1"),
        ({"job": {"source": "kafka"}}, "job.source: must be one of"),
        ({"jobs": {"parallelism": "1"}}, "jobs: unknown property group"),
        ({"scoring": {"shards": "2"}}, "scoring.shards: unknown setting"),
        ({"simulator": {"anomalies": "yes"}}, "simulator.anomalies: expected true or false"),
    ],
)
def test_a_bad_value_fails_naming_its_key(properties, groups, message):
    with pytest.raises(ConfigError, match=message):
        load_config(properties(groups))


def test_malformed_properties_file_is_named(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(ConfigError, match="expected a list of property groups"):
        load_config(path)


def test_managed_flink_without_its_properties_file_fails_loudly(monkeypatch):
    monkeypatch.delenv("IS_LOCAL", raising=False)
    monkeypatch.delenv("CLICKSENTRY_PROPERTIES", raising=False)
    missing = r"application_properties\.json: properties file not found"
    with pytest.raises(ConfigError, match=missing):
        load_config()


def test_local_runs_read_the_file_named_by_the_environment(monkeypatch, properties):
    monkeypatch.setenv("IS_LOCAL", "1")
    monkeypatch.setenv("CLICKSENTRY_PROPERTIES", str(properties({"job": {"parallelism": "2"}})))
    assert load_config().get("job", "parallelism") == 2


def test_a_self_managed_cluster_reads_the_file_named_by_the_environment(monkeypatch, properties):
    monkeypatch.delenv("IS_LOCAL", raising=False)
    monkeypatch.setenv("CLICKSENTRY_PROPERTIES", str(properties({"job": {"parallelism": "3"}})))
    assert load_config().get("job", "parallelism") == 3
