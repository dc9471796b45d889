"""Small real-data studies for end-to-end tests: the indomethacin plan with short MCMC."""

from __future__ import annotations

from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def small_indo_plan(tmp_path: Path, goals: list[dict], name: str, design_goals: list[dict] | None = None) -> Path:
    """The indo_rct plan with a small sampler, few SBC replicates and a short design."""
    spec = yaml.safe_load((EXAMPLES / "indo_rct.yaml").read_text())
    spec["sampler"] = {"draws": 300, "tune": 300, "chains": 2}
    (tmp_path / "indo_rct.yaml").write_text(yaml.safe_dump(spec))
    design = yaml.safe_load((EXAMPLES / "design_hybrid_binary.yaml").read_text())
    design.update(replicates=1000, chunk_size=250)
    (tmp_path / "design.yaml").write_text(yaml.safe_dump(design))
    plan = yaml.safe_load((EXAMPLES / "credibility_indo.yaml").read_text())
    plan["name"] = name
    plan["data"]["spec"] = "indo_rct.yaml"
    plan["verification"] = {"sbc_replicates": 10, "sbc_observations": 60, "engine_replicates": 400}
    plan["sub_models"] = {"virtual_patient_generation": {"goals": goals}}
    if design_goals is not None:
        plan["sub_models"]["trial_decision_model"] = {"design": "design.yaml", "analyses": ["borrowing"],
                                                      "goals": design_goals}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path
