"""The import rules of lib/__init__.py, read from the source: layers, paper A and B apart, no cycle."""

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib"
FOUNDATION = [
    "common",
    "config",
    "provenance",
    "phases",
    "lm",
    "fixtures",
    "data",
    "models",
    "prompts",
    "stats",
    "evaluation",
    "teachers",
    "training",
    "plotting",
    "runner",
]
PAPER_A = {"signals", "ta_loop"}
PAPER_B = {"attribution", "rationales", "encoder"}
MEETING = {
    "weak_teacher",
    "recipe",
    "premises",
    "report",
    "reproduce",
    "bench",
    "check_paper",
    "coverage",
    "plan",
}


def lib_imports() -> dict[str, set[str]]:
    """module -> the lib modules it imports anywhere in its source (also inside functions)."""
    out = {}
    for p in LIB.glob("*.py"):
        if p.stem == "__init__":
            continue
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lib"):
                deps.update(
                    [node.module.split(".")[1]] if "." in node.module else [a.name for a in node.names]
                )
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("lib."))
        out[p.stem] = deps - {p.stem}
    return out


def test_every_module_is_placed():
    assert set(lib_imports()) == set(FOUNDATION) | PAPER_A | PAPER_B | MEETING


def test_the_lm_wrapper_imports_only_the_phase_counter_which_needs_only_common():
    deps = lib_imports()
    assert deps["lm"] == {"phases"} and deps["phases"] == {"common"}


def test_foundation_modules_import_only_earlier_foundation_modules():
    deps = lib_imports()
    for i, m in enumerate(FOUNDATION):
        assert deps[m] <= set(FOUNDATION[:i]), (m, deps[m] - set(FOUNDATION[:i]))


def test_paper_a_and_paper_b_never_import_each_other():
    deps = lib_imports()
    for m in PAPER_A:
        assert not deps[m] & (PAPER_B | MEETING), (m, deps[m] & (PAPER_B | MEETING))
    for m in PAPER_B:
        assert not deps[m] & (PAPER_A | MEETING), (m, deps[m] & (PAPER_A | MEETING))


def test_no_import_cycle():
    _check_acyclic(lib_imports())


def lm_private_names() -> set[str]:
    """The wrapper's private helpers, read from lm.py itself: module-level and method names with one `_`."""
    tree = ast.parse((LIB / "lm.py").read_text())
    defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    return {n.name for n in defs if n.name.startswith("_") and not n.name.startswith("__")}


def bypasses(src: str, private: set[str]) -> set[str]:
    """Private helpers of lm that `src` names: imported from lib.lm, or called as an attribute."""
    hits = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("lm"):
            hits |= {a.name for a in node.names if a.name in private}
        elif isinstance(node, ast.Attribute) and node.attr in private:
            hits.add(node.attr)
    return hits


def test_nothing_bypasses_the_lm_wrapper():
    """No module outside lm (and no test but the wrapper's own) uses the wrapper's private helpers."""
    private = lm_private_names()
    assert {"_groups", "_chunked_logprobs"} <= private  # the rule reads real names
    own = {"lm.py", "test_imports.py", "test_scoring_memory.py", "test_generation.py"}
    for p in list(LIB.glob("*.py")) + list((LIB.parent / "tests").glob("*.py")):
        if p.name not in own:
            assert not bypasses(p.read_text(), private), (p.name, bypasses(p.read_text(), private))


def test_the_rules_fail_on_planted_violations():
    """Each rule above rejects a planted violation: a private call, a private import, a foundation module
    importing a later one, paper A importing paper B, and a cycle."""
    private = lm_private_names()
    assert bypasses("def f(lm):\n    return lm._groups([], 1, 1, len)", private) == {"_groups"}
    assert bypasses("from lib.lm import _chunked_logprobs", private) == {"_chunked_logprobs"}
    deps = {**lib_imports(), "common": {"config"}}
    assert not deps["common"] <= set(FOUNDATION[: FOUNDATION.index("common")])
    deps = {**lib_imports(), "signals": {"attribution"}}
    assert deps["signals"] & PAPER_B
    deps = {"a": {"b"}, "b": {"a"}}
    try:
        _check_acyclic(deps)
    except AssertionError:
        pass
    else:
        raise AssertionError("a planted cycle passed")


def _check_acyclic(deps: dict[str, set[str]]) -> None:
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle: {' -> '.join(path + [m])}"
        state[m] = "open"
        for d in sorted(deps.get(m, ())):
            visit(d, path + [m])
        state[m] = "done"

    for m in deps:
        visit(m, [])


def test_report_reads_results_without_the_front_door():
    """Reading results never runs notebooks: report does not import reproduce."""
    assert "reproduce" not in lib_imports()["report"]
