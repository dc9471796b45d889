"""Generated bad input, every kind a user hands the CLI: one readable message, exit 2, nothing
written, no traceback (property-based, `hypothesis`).

Each case starts from a bundled, valid file and breaks it: an unknown key, a value of the
wrong kind, a required key removed (specs, designs, plans, studies); a non-number, an
out-of-range value, a missing column, empty or binary content (data files); arbitrary bytes,
zips of arbitrary members (names with ``../`` included) and manifests of arbitrary JSON
(packages). A mutation that happens to leave a spec valid is discarded (``assume``) by the
same validator the command uses, so every case tried is invalid. Examples per kind are in
``EXAMPLES``; the data-file kind runs Great Expectations each time (~0.5 s), hence fewer.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from insilico.cli import main
from insilico.common.errors import UserError
from insilico.stages.studyspec import read_study
from insilico.trials.design import TrialDesign
from insilico.validation.plan import read_plan
from insilico.virtual_patients.examples import example_data, example_spec_path, examples_dir
from insilico.virtual_patients.spec import GeneratorSpec

EXAMPLES = {"generator": 300, "design": 300, "plan": 200, "study": 200, "data": 120, "package": 300}
QUALIFICATION = ("study_qualification.yaml", "credibility_qualification.yaml", "indo_qualification.yaml",
                 "design_qualification.yaml")

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9), st.floats(allow_nan=True),
                 st.text(max_size=12), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=6), st.integers(), max_size=2))


def _paths(node, prefix=()) -> list[tuple]:
    """Every key path into nested mappings and lists."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


def _at(node, path):
    for k in path:
        node = node[k]
    return node


@st.composite
def broken(draw, valid: dict) -> dict:
    """``valid`` with one mutation: unknown key, junk value, or a key removed."""
    data = json.loads(json.dumps(valid))
    paths = _paths(data)
    kind = draw(st.sampled_from(["unknown_key", "junk", "remove"]))
    if kind == "unknown_key":
        dicts = [()] + [p for p in paths if isinstance(_at(data, p), dict)]
        where = _at(data, draw(st.sampled_from(dicts)))
        where[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in where))] = draw(JUNK)
    else:
        path = draw(st.sampled_from(paths))
        parent = _at(data, path[:-1])
        if kind == "junk":
            parent[path[-1]] = draw(JUNK)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return data


def _invalid(check, data) -> bool:
    try:
        check(data)
    except (UserError, ValueError, TypeError):
        return True
    return False


@contextmanager
def _folder():
    d = Path(tempfile.mkdtemp(prefix="bad-input-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _refused(capsys, args: list[str], never_written: Path) -> None:
    capsys.readouterr()
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err[-2000:])
    assert "error:" in err.splitlines()[0] or any(line.startswith("insilico") and "error:" in line
                                                  for line in err.splitlines()), err[-1000:]
    assert "Traceback" not in out + err and "this is a bug" not in err
    assert not never_written.exists(), f"{never_written} was written"


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=True)
ANOREXIA = yaml.safe_load(example_spec_path("anorexia").read_text())
DESIGN = yaml.safe_load((examples_dir() / "design_qualification.yaml").read_text())
PLAN = yaml.safe_load((examples_dir() / "credibility_qualification.yaml").read_text())
STUDY = yaml.safe_load((examples_dir() / "study_qualification.yaml").read_text())


def test_every_starting_point_is_valid():
    """Each case breaks a valid file: were the base invalid, the 'assume' would admit anything."""
    GeneratorSpec.model_validate(ANOREXIA)
    TrialDesign.from_dict(DESIGN)
    with _folder() as d:
        for f in QUALIFICATION:
            shutil.copyfile(examples_dir() / f, d / f)
        read_plan(d / "credibility_qualification.yaml")
        read_study(d / "study_qualification.yaml")


@pytest.fixture(scope="module")
def anorexia_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "anorexia.csv"
    example_data("anorexia").to_csv(path, index=False)
    return path


@settings(max_examples=EXAMPLES["generator"], **SETTINGS)
@given(data=broken(ANOREXIA))
def test_broken_generator_specs(capsys, anorexia_csv, data):
    assume(_invalid(GeneratorSpec.model_validate, data))
    with _folder() as d:
        (d / "spec.yaml").write_text(yaml.safe_dump(data))
        _refused(capsys, ["fit", "--data", str(anorexia_csv), "--spec", str(d / "spec.yaml"), "--out", str(d / "o"),
                          "--no-register", "--no-progress"], d / "o")


@settings(max_examples=EXAMPLES["design"], **SETTINGS)
@given(data=broken(DESIGN))
def test_broken_designs(capsys, data):
    assume(_invalid(TrialDesign.from_dict, data))
    with _folder() as d:
        (d / "design.yaml").write_text(yaml.safe_dump(data))
        _refused(capsys, ["simulate", "--design", str(d / "design.yaml"), "--out", str(d / "r.nc")], d / "r.nc")


def _broken_qualification_file(capsys, name: str, data: dict, read, command: str) -> None:
    """The qualification study's files with ``name`` replaced by ``data``: refused by ``command``."""
    with _folder() as d:
        for f in QUALIFICATION:
            shutil.copyfile(examples_dir() / f, d / f)
        path = d / name
        path.write_text(yaml.safe_dump(data))
        assume(_invalid(read, path))
        _refused(capsys, [command, str(path), "--out", str(d / "o"), "--no-register", "--no-progress"], d / "o")


@settings(max_examples=EXAMPLES["plan"], **SETTINGS)
@given(data=broken(PLAN))
def test_broken_credibility_plans(capsys, data):
    _broken_qualification_file(capsys, "credibility_qualification.yaml", data, read_plan, "validate")


@settings(max_examples=EXAMPLES["study"], **SETTINGS)
@given(data=broken(STUDY))
def test_broken_studies(capsys, data):
    _broken_qualification_file(capsys, "study_qualification.yaml", data, read_study, "run")


@st.composite
def broken_table(draw) -> bytes:
    """The anorexia table with a defect the contract must catch, as file bytes."""
    df = example_data("anorexia")
    controls = df.index[df["Treat"] == "Cont"].tolist()  # the rows the spec's subset keeps
    kind = draw(st.sampled_from(["text_in_number", "out_of_range", "drop_column", "empty", "header_only", "binary"]))
    if kind == "text_in_number":
        col = draw(st.sampled_from(["Prewt", "Postwt"]))
        df[col] = df[col].astype(object)
        df.loc[draw(st.sampled_from(controls)), col] = draw(st.text(alphabet="abcxyz?!", min_size=1, max_size=5))
    elif kind == "out_of_range":
        col = draw(st.sampled_from(["Prewt", "Postwt"]))
        lo, hi = ANOREXIA["covariates"][0]["range"] if col == "Prewt" else ANOREXIA["outcome"]["range"]
        df.loc[draw(st.sampled_from(controls)), col] = draw(st.one_of(
            st.floats(hi + 0.01, 1e9), st.floats(-1e9, lo - 0.01)))
    elif kind == "drop_column":
        df = df.drop(columns=[draw(st.sampled_from(["Prewt", "Postwt", "Treat"]))])
    elif kind == "empty":
        return b""
    elif kind == "header_only":
        return (",".join(df.columns) + "\n").encode()
    else:
        return draw(st.binary(min_size=1, max_size=200))
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue().encode()


@settings(max_examples=EXAMPLES["data"], **SETTINGS)
@given(content=broken_table())
def test_broken_data_files(capsys, content):
    with _folder() as d:
        (d / "data.csv").write_bytes(content)
        _refused(capsys, ["fit", "--data", str(d / "data.csv"), "--spec", str(example_spec_path("anorexia")),
                          "--out", str(d / "o"), "--no-register", "--no-progress"], d / "o")


NAMES = st.one_of(st.sampled_from(["MANIFEST.json", "run.json", "../x", "../../x", "/abs", "a/../../x", "study/s.yaml"]),
                  st.text(alphabet="abc./_-", min_size=1, max_size=12))


@st.composite
def broken_package(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "members", "manifest"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        members = draw(st.lists(st.tuples(NAMES, st.binary(max_size=40)), max_size=5, unique_by=lambda m: m[0]))
        if kind == "manifest":
            doc = draw(st.recursive(JUNK, lambda c: st.one_of(st.lists(c, max_size=3),
                                                               st.dictionaries(st.text(max_size=6), c, max_size=3)),
                                    max_leaves=8))
            members = [m for m in members if m[0] != "MANIFEST.json"] + [("MANIFEST.json", json.dumps(doc).encode())]
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


@settings(max_examples=EXAMPLES["package"], **SETTINGS)
@given(content=broken_package())
def test_broken_packages_are_refused_and_nothing_lands_outside(capsys, content):
    with _folder() as d:
        pkg = d / "inner" / "study.zip"
        pkg.parent.mkdir()
        pkg.write_bytes(content)
        _refused(capsys, ["reproduce", str(pkg)], d / "x")
        assert not (d / "inner" / "x").exists() and sorted(p.name for p in d.rglob("*")) == ["inner", "study.zip"]


BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
               for p, a in zip(" abcdefgh", "abcdefghi", strict=True)) + "seed: *i\n"


def test_an_alias_bomb_is_refused_quickly(capsys, tmp_path):
    import time

    (tmp_path / "bomb.yaml").write_text(BOMB)  # 9^9 = 387 million values when expanded
    start = time.perf_counter()
    _refused(capsys, ["simulate", "--design", str(tmp_path / "bomb.yaml"), "--out", str(tmp_path / "r.nc")],
             tmp_path / "r.nc")
    assert time.perf_counter() - start < 5.0


def test_yaml_tags_are_never_executed(capsys, tmp_path):
    marker = tmp_path / "executed"
    (tmp_path / "tag.yaml").write_text(f'seed: !!python/object/apply:os.system ["touch {marker}"]\n')
    _refused(capsys, ["simulate", "--design", str(tmp_path / "tag.yaml"), "--out", str(tmp_path / "r.nc")],
             tmp_path / "r.nc")
    assert not marker.exists()
