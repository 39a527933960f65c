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


def test_detector_params_are_read_in_kda_names_for_the_detector(properties):
    """GIVEN rcf-kda with KDA's RANDOM_CUT_FOREST parameters and columns in the properties file
    WHEN the configuration is loaded
    THEN scoring.detector_params holds the detector's parameters they map to."""
    kda = {"columns": ["ctr", "bot_share"], "numberOfTrees": 50, "subSampleSize": 128,
           "timeDecay": 10000, "shingleSize": 2}
    path = properties({"scoring": {"detector": "rcf-kda", "detector_params": json.dumps(kda)}})
    assert load_config(path).get("scoring", "detector_params") == {
        "columns": ["ctr", "bot_share"],
        "scorer_params": {"num_trees": 50, "sample_size": 128, "time_decay": 10000,
                          "shingle_size": 2},
    }


def test_detector_params_default_to_the_preset(properties):
    """GIVEN no detector_params WHEN the configuration is loaded THEN there are none."""
    assert load_config(properties({})).get("scoring", "detector_params") == {}


@pytest.mark.parametrize(
    ("detector_params", "message"),
    [
        ("numberOfTrees=50", "scoring.detector_params: expected a JSON object"),
        ('["numberOfTrees", 50]', "scoring.detector_params: expected a JSON object"),
        ('{"numTrees": 50}', "scoring.detector_params: numTrees: unknown key"),
        ('{"subSampleSize": 0}', "scoring.detector_params: subSampleSize: .*sample_size must be"),
        ('{"timeDecay": "slow"}', "scoring.detector_params: timeDecay: "),
        ('{"columns": ["ctr", "clickthrough"]}',
         r"scoring.detector_params: columns: columns \['clickthrough'\] are not features"),
    ],
)
def test_a_bad_detector_param_fails_at_start_naming_its_key(properties, detector_params, message):
    """GIVEN a bad scoring.detector_params WHEN the configuration is loaded
    THEN it fails naming the setting and the key inside it."""
    path = properties({"scoring": {"detector": "rcf-kda", "detector_params": detector_params}})
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_detector_params_are_checked_against_the_chosen_detector(properties):
    """GIVEN KDA's forest parameters for a detector that is no forest
    THEN the configuration fails naming the key."""
    path = properties({"scoring": {"detector": "ensemble-level",
                                   "detector_params": '{"numberOfTrees": 50}'}})
    with pytest.raises(ConfigError, match=r"scoring\.detector_params: numberOfTrees: .*'ensemble'"):
        load_config(path)


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
