"""The package's import graph has no circle (issue 22): each module's imports of the package's own
modules, top level and inside functions, read from the source with `ast`."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "hybrid_drift"


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import x` may name a module
                cand = f"{target}.{alias.name}"
                out.add(cand if cand in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in known and m != name}


def test_no_import_circle_between_the_package_modules():
    files = {_module(p): p for p in PKG.rglob("*.py")}
    known = set(files)
    graph = {m: _imports(p, m, known) for m, p in files.items()}
    # a package's __init__ re-exports its children: edges into a package from its own children are not circles
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_branch_settings_are_checked_by_one_table_and_take_effect_after_construction():
    from hybrid_drift import CNNBranch, ColourBranch, LightBranch, LocalBranch
    from hybrid_drift.branches.params import check_params
    c = ColourBranch()
    c.bins = 16  # derived objects are built from the settings when needed, not frozen in __init__
    assert c.feature_extractor.n_features == ColourBranch(bins=16).feature_extractor.n_features
    n = CNNBranch(augment=0)
    n.image_size = (96, 128)
    assert n.embedder.image_size == (96, 128)
    for make, bad in ((ColourBranch, dict(bins=1)), (ColourBranch, dict(distance="cosine")),
                      (CNNBranch, dict(pool="median")), (CNNBranch, dict(image_size=8)),
                      (LocalBranch, dict(grid=(0, 4))), (LightBranch, dict(margin=0.5))):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make(**bad)
    with pytest.raises(ValueError, match="bins"):  # the same table checks a saved model's settings
        check_params(ColourBranch, {"bins": 1000})


def test_the_command_line_reads_choices_and_defaults_from_the_library():
    from hybrid_drift import CNNBranch, ColourBranch, HybridDetector
    from hybrid_drift.cli import _parser
    from hybrid_drift.runtime import BACKENDS
    from hybrid_drift.scorers.distances import DISTANCES
    sub = next(a for a in _parser()._actions if a.dest == "cmd").choices
    opts = {a.dest: a for a in sub["fit"]._actions}
    assert tuple(opts["distance"].choices) == tuple(DISTANCES)
    assert opts["distance"].default == ColourBranch().distance and opts["bins"].default == ColourBranch().bins
    assert tuple(opts["grid"].default) == ColourBranch().grid and opts["pool"].default == CNNBranch().pool
    # --fpr defaults to None (it may come from --false-alarms-per-day instead); its help names the library's default
    assert f"default {HybridDetector().fpr}" in opts["fpr"].help and opts["k"].default == HybridDetector().k
    for cmd in ("bench", "fit", "score", "report", "monitor", "watch"):
        assert tuple({a.dest: a for a in sub[cmd]._actions}["backend"].choices) == BACKENDS


def test_no_module_writes_another_objects_runtime_fields():
    """How a model runs is set through Runtime and bind(), never by assigning another object's attributes."""
    import re
    pattern = re.compile(r"(?<!self)\.(_cache|cache_dir|workers|progress|max_pixels|backend)\s*=[^=]")
    offenders = []
    for path in PKG.rglob("*.py"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) and not re.search(r"\ba\.\w+\s*=", code):  # argparse namespaces are the CLI's own
                offenders.append(f"{path.relative_to(PKG)}:{i}: {line.strip()}")
    assert not offenders, offenders


def test_the_command_line_starts_without_loading_pytorch_or_the_dataset_tools():
    """`hybrid-drift --help`, and a colour-only `watch`, must not pay for PyTorch (~500 MB, seconds)."""
    import subprocess
    import sys
    code = ("import sys; from hybrid_drift.cli import _parser; _parser(); "
            "print(sorted(m for m in ('torch', 'albumentations', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_every_command_help_has_examples_and_the_exit_codes_are_in_the_top_level_help():
    from hybrid_drift.cli import _parser
    p = _parser()
    sub = next(a for a in p._actions if a.dest == "cmd").choices
    missing = [name for name, sp in sub.items() if "examples:" not in sp.format_help()]
    assert not missing, missing
    assert "130 interrupted" in p.format_help() and "1 a requested constraint failed" in p.format_help()
