"""Specs are data: YAML in, YAML out, unknown keys and inconsistent specs refused with the
key path named; every bundled example passes its own data contract."""

from __future__ import annotations

import pytest

from insilico.common.errors import SpecError
from insilico.validation.contract import check_data
from insilico.virtual_patients.examples import EXAMPLES, example_data, example_spec_path
from insilico.virtual_patients.fitting import select_rows
from insilico.virtual_patients.spec import GeneratorSpec

BASE = {
    "covariates": [{"name": "age", "type": "continuous"}, {"name": "sex", "type": "binary"}],
    "outcome": {"family": "weibull", "time": "time", "event": "status"},
}


def test_yaml_round_trip_keeps_the_hash(tmp_path):
    spec = GeneratorSpec.from_dict(BASE)
    path = tmp_path / "spec.yaml"
    path.write_text(spec.to_yaml())
    again = GeneratorSpec.from_yaml(path)
    assert again == spec and again.hash() == spec.hash()
    assert len(spec.hash()) == 64


def test_hash_changes_with_any_setting():
    a = GeneratorSpec.from_dict(BASE)
    b = GeneratorSpec.from_dict({**BASE, "priors": {"between_study_sd": 1.0}})
    assert a.hash() != b.hash()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"outcome": {"family": "weibull", "time": "time", "event": "status", "tme": 1}}, "outcome.tme: unknown key"),
        ({"outcome": {"family": "weibull", "column": "y"}}, "needs both 'time' and 'event'"),
        ({"outcome": {"family": "gamma", "column": "y"}}, "outcome.family"),
        ({"covariates": [{"name": "sex", "type": "binary", "levels": ["f", "m", "x"]}]}, "exactly 2 levels"),
        ({"covariates": [{"name": "age", "type": "continuous"}, {"name": "age", "type": "count"}]}, "repeated"),
        ({"covariates": [{"name": "time", "type": "continuous"}]}, "both as covariate and as outcome"),
        ({"covariates": [{"name": "n", "type": "count", "transform": "log"}]}, "transform none"),
    ],
)
def test_bad_specs_name_the_key(change, message):
    with pytest.raises(SpecError) as err:
        GeneratorSpec.from_dict({**BASE, **change}, source="my.yaml")
    assert message in str(err.value) and "my.yaml" in str(err.value)


def test_spec_file_errors(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        GeneratorSpec.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("covariates: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        GeneratorSpec.from_yaml(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="YAML mapping"):
        GeneratorSpec.from_yaml(bad)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_pass_their_contract(name):
    spec = GeneratorSpec.from_yaml(example_spec_path(name))
    rows = select_rows(example_data(name), spec)
    result = check_data(rows, spec)
    assert result.success, result.report()
    assert len(rows) == {"gbsg": 440, "rotterdam": 2091, "indo_rct": 307, "anorexia": 26,
                         "gbsg_rotterdam_coded": 440, "opt_control": 403, "colon_obs": 315}[name]
