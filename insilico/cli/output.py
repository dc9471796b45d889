"""What the command line prints about a result: fit diagnostics, assessments, study outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

LEVEL_COLOUR = {"met": "green", "partly met": "yellow", "not met": "red", "no evidence": "red"}


def print_fit(con: Console, res) -> None:
    from insilico.validation.diagnostics import ESS_MIN, RHAT_MAX, converged

    d = res.diagnostics
    ok = converged(d)
    con.print(f"[bold]generator saved[/] to {res.generator_dir}  (MLflow run {res.run_id})")
    con.print(f"  max R-hat {d['max_rhat']:.4f} (< {RHAT_MAX}), min ESS bulk {d['min_ess_bulk']:.0f} / "
              f"tail {d['min_ess_tail']:.0f} (>= {ESS_MIN}), divergences {d['divergences']}  "
              + ("[green]converged[/]" if ok else "[red]NOT converged: do not use; raise sampler draws/tune[/]"))
    if res.model_uri:
        con.print(f"  registered model: {res.model_uri}")


def print_assessment(con: Console, assessment: dict) -> None:
    from rich.table import Table

    for sm in assessment["sub_models"]:
        verdict = {True: "adequate", False: "NOT adequate", None: "not assessed"}[sm["adequate"]]
        t = Table(title=f"{sm['title']}: {verdict}", show_lines=False)
        for col in ("factor", "level", "achieved", "gaps"):
            t.add_column(col, overflow="fold")
        for f in sm["factors"]:
            if f["level"] == "not assessed":
                continue
            c = LEVEL_COLOUR.get(f["level"], "white")
            t.add_row(f["factor"], f"[{c}]{f['level']}[/]", f["achieved"], "; ".join(f["gaps"]))
        con.print(t)
    o = assessment["overall"]
    con.print(("[green]" if o["adequate"] else "[red]") + o["summary"] + "[/]")
    blank = [k for k, v in assessment["judgements"].items() if v is None]
    if blank:
        con.print(f"judgements for a person to record (insilico sign RUN_ID --field ...): {', '.join(blank)}")


def print_study(con: Console, res) -> None:
    o = res.assessment["overall"]
    con.print(("[green]" if o["adequate"] else "[red]") + o["summary"] + "[/]")
    con.rule("[bold]outputs[/]")
    for name, path in sorted(res.files.items()):
        con.print(f"  {name:<22} {path.resolve()}")
    con.print(f"MLflow parent run {res.run_id}; re-run the package with: insilico reproduce "
              f"{res.files['package'].resolve()}")
