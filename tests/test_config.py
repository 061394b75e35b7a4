"""Validated configs: field-naming error messages, YAML presets, overrides."""

import pytest
from pydantic import Field

from skyshare.config import StrictModel, build_config, load_yaml, parse_override
from skyshare.errors import ConfigError


class Radio(StrictModel):
    fc_ghz: float = Field(2.0, gt=0, le=100)
    n_antennas: int = Field(4, ge=1)


class Toy(StrictModel):
    p_max_w: float = Field(20.0, gt=0)
    probability: float = Field(0.5, ge=0, le=1)
    distance_m: float = Field(10.0, ge=0)
    radio: Radio = Radio()


def test_defaults_validate():
    cfg = Toy.from_dict({})
    assert cfg.p_max_w == 20.0 and cfg.radio.n_antennas == 4


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"p_max_w": -1}, ["p_max_w = -1", "must be > 0", "(0, inf)"]),
        ({"probability": 1.5}, ["probability = 1.5", "<= 1", "[0, 1]"]),
        ({"distance_m": -3}, ["distance_m = -3", ">= 0", "[0, inf)"]),
        ({"radio": {"n_antennas": 0}}, ["radio.n_antennas = 0", ">= 1"]),
        ({"radio": {"fc_ghz": 200}}, ["radio.fc_ghz = 200", "(0, 100]"]),
        ({"bogus": 1}, ["bogus: unknown key", "allowed keys: p_max_w, probability"]),
        ({"radio": {"what": 1}}, ["radio.what: unknown key", "allowed keys: fc_ghz, n_antennas"]),
        ({"p_max_w": "lots"}, ["p_max_w = 'lots'"]),
    ],
)
def test_invalid_values_name_field_and_range(data, needles):
    with pytest.raises(ConfigError) as info:
        Toy.from_dict(data, what="toy")
    message = str(info.value)
    assert message.startswith("toy config is invalid")
    for needle in needles:
        assert needle in message


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as info:
        Toy.from_dict({"p_max_w": -1, "probability": 2})
    assert "p_max_w" in str(info.value) and "probability" in str(info.value)


def test_overrides_parse_yaml_values():
    assert parse_override("p_max_w=1e-3") == ("p_max_w", 1e-3)
    assert parse_override("radio.n_antennas=8") == ("radio.n_antennas", 8)
    assert parse_override("flag=true") == ("flag", True)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("p_max_w")
    with pytest.raises(ConfigError, match="NaN"):
        parse_override("p_max_w=.nan")


def test_replace_validates():
    cfg = Toy.from_dict({})
    assert cfg.replace(**{"radio.n_antennas": 16}).radio.n_antennas == 16
    with pytest.raises(ConfigError, match="n_antennas"):
        cfg.replace(**{"radio.n_antennas": -2})


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(listy)


def test_build_config_precedence(tmp_path):
    file = tmp_path / "mine.yaml"
    file.write_text("p_max_w: 5\nprobability: 0.25\n")
    cfg = build_config(Toy, "toy", preset=None, file=file, overrides=["probability=0.75"])
    assert cfg.p_max_w == 5 and cfg.probability == 0.75


def test_booleans_are_not_numbers_inside_lists_either():
    """A preset's seeds, network sizes and sweep lists refuse true/false (pydantic would read
    them as 1 and 0), naming the field."""
    import pytest

    from skyshare.errors import ConfigError
    from skyshare.experiments import catn_fig6
    from skyshare.experiments.jobs import ExperimentPreset

    with pytest.raises(ConfigError, match=r"seeds = \[True\]: numbers are needed"):
        ExperimentPreset.from_dict({"seeds": [True]})
    bad = {"n_slots": 3, "dfp_slots": 1, "hidden_sizes": [4, False]}
    with pytest.raises(ConfigError, match="hidden_sizes = "):
        catn_fig6.Preset.from_dict({**bad, "i_max_values_mw": [1e-10]})
    assert ExperimentPreset.from_dict({"seeds": [0, 3]}).seeds == [0, 3]


def test_a_nested_config_error_names_its_full_path_and_the_file(tmp_path):
    """A model built from a part of a larger config (an experiment's scenario overrides)
    names its fields by their path in that config, and a --config file's values by the
    file; the error survives pickling (worker processes)."""
    import pickle

    from skyshare.config import InvalidConfigError, config_sources

    with pytest.raises(InvalidConfigError) as info:
        Radio.from_dict({"n_antennas": [4], "what": 1}, what="radio")
    larger = {"radio": {"n_antennas": [4], "what": 1}, "points": [{"radio": {"n_antennas": [4]}}]}
    message = str(info.value.located(larger))
    assert "  - radio.n_antennas = [4]: Input should be a valid integer" in message
    assert "  - points.0.radio.n_antennas = [4]:" in message
    assert "  - radio.what: unknown key (allowed keys: fc_ghz, n_antennas)" in message
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)

    file = tmp_path / "mine.yaml"
    file.write_text("radio: {n_antennas: 0}\nprobability: 0.5\n")
    with pytest.raises(ConfigError, match=r"radio\.n_antennas = 0: .*\(from config file "):
        build_config(Toy, "toy", preset=None, file=file)
    with pytest.raises(ConfigError) as replaced:
        build_config(Toy, "toy", preset=None, file=file, overrides=["radio.n_antennas=-1"])
    assert "radio.n_antennas = -1" in str(replaced.value)
    assert "config file" not in str(replaced.value)
    assert config_sources(file, {"radio": {}}) == {("probability",): f"from config file {file}"}
