"""The import rules of lib/__init__.py, read from the source: layers, paper A and B apart, no cycle."""

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib"
FOUNDATION = [
    "common",
    "config",
    "provenance",
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
MEETING = {"weak_teacher", "recipe", "report", "reproduce", "bench", "check_paper", "coverage"}


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


def test_the_lm_wrapper_imports_nothing_of_lib():
    assert lib_imports()["lm"] == set()


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
    deps = lib_imports()
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


def test_nothing_bypasses_the_lm_wrapper():
    """No module outside lm calls the wrapper's private helpers."""
    for p in list(LIB.glob("*.py")) + list((LIB.parent / "tests").glob("*.py")):
        if p.name in ("lm.py", "test_imports.py"):
            continue
        src = p.read_text()
        for private in ("._prompt_ids(", "._ids(", "._batch(", "._token_logprobs(", "._pad("):
            assert private not in src, (p.name, private)
