"""The import rules of ARCHITECTURE.md, checked on the source (an import-linter equivalent).

Layers: ``common`` <- ``virtual_patients`` <- ``trials``; ``common`` <- ``validation``;
``common`` <- ``reports``; only the application layer (every other module of
``insilico``) imports them all. Besides the layer rules: no import cycle between
modules, no private name (``_name``) imported from or read off another module, the
bare folder names (``trials``, ``validation``, ...) never imported, and modules of
about 500 lines at most.

The graph is built from every ``import`` in a module, including those inside
functions: a deferred import is still a dependency.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"insilico": "insilico", "virtual_patients": "insilico.virtual_patients", "trials": "insilico.trials",
           "validation": "insilico.validation", "reports": "insilico.reports", "examples": "insilico.examples"}
LAYERS = ("common", "virtual_patients", "trials", "validation", "reports")
ALLOWED = {
    "common": {"common"},
    "virtual_patients": {"common", "virtual_patients"},
    "trials": {"common", "virtual_patients", "trials"},
    "validation": {"common", "validation"},
    "reports": {"common", "reports"},
}
MAX_LINES = 520


@cache
def modules() -> dict[str, Path]:
    """Every module of the namespace: dotted name -> file."""
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join((package, *rel))] = path
    return out


def layer(module: str) -> str:
    """The layer of a module: one of LAYERS, or 'app'."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "app"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = modules()[module].name == "__init__.py"
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports() -> dict[str, list[tuple[str, str | None, int]]]:
    """module -> [(imported module, imported name or None, line)] for imports within insilico."""
    known = modules()
    out: dict[str, list] = {}
    for module, path in known.items():
        found = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(a.name, None, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, node)
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    found.append((sub, None, node.lineno) if sub in known else (target, a.name, node.lineno))
        out[module] = found
    return out


def test_no_bare_folder_imports():
    bare = {"virtual_patients", "trials", "validation", "reports"}
    bad = []
    for path in [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py"),
                 *modules().values()]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in bare]
    assert not bad, "import through the insilico namespace:\n" + "\n".join(bad)


def test_layers_import_one_way():
    bad = []
    for module, found in imports().items():
        here = layer(module)
        if here == "app":
            continue
        for target, _, line in found:
            if target.split(".")[0] == "insilico" and target != "insilico" and layer(target) not in ALLOWED[here]:
                bad.append(f"{module}:{line} ({here}) imports {target} ({layer(target)})")
            elif target == "insilico":
                bad.append(f"{module}:{line} ({here}) imports the application package insilico")
    assert not bad, "forbidden edges:\n" + "\n".join(bad)


def test_no_import_cycles():
    known = modules()
    graph = {m: sorted({t for t, _, _ in found if t in known and t != m}) for m, found in imports().items()}
    # a package's __init__ is imported by its submodules' import machinery, not by their code
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_private_names_cross_modules():
    known = modules()
    bad = []
    for module, found in imports().items():
        bad += [f"{module}:{line} imports {target}.{name}" for target, name, line in found
                if name and name.startswith("_") and not name.startswith("__") and target != module]
        # module._attribute on an imported module object
        aliases = {}
        tree = ast.parse(known[module].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, node)
                for a in node.names:
                    if f"{target}.{a.name}" in known:
                        aliases[a.asname or a.name] = f"{target}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in known and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{module}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_modules_stay_small():
    big = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them along ARCHITECTURE.md): {big}"


def test_architecture_md_lists_every_module():
    """The module tree of ARCHITECTURE.md names exactly the modules on disk."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    tree = text.split("## Modules", 1)[1].split("```")[1]
    listed, stack = set(), []
    for line in tree.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.strip().split()[0]
        stack[depth:] = [name]
        if name.endswith(".py"):
            listed.add("".join(stack))
    on_disk = {p.relative_to(ROOT).as_posix() for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}
    assert listed == on_disk, (f"missing from ARCHITECTURE.md: {sorted(on_disk - listed)}; "
                               f"listed but absent: {sorted(listed - on_disk)}")


def test_the_wheel_lists_every_package():
    """pyproject's explicit package list (package-dir maps the folders) names every package on disk."""
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    on_disk = {m for m, p in modules().items() if p.name == "__init__.py"}
    assert listed == on_disk, f"missing from pyproject: {sorted(on_disk - listed)}; not on disk: {sorted(listed - on_disk)}"
    assert conf["package-dir"] == {"insilico": "insilico", **{v: k for k, v in FOLDERS.items() if k != "insilico"}}
