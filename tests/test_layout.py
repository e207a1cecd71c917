"""The layout shows the pipeline: arrows only downward, no cycles, small modules, one façade.

The rules are stated in docs/design.md ("Rules the layout keeps"). Every test
here reads the source files (the import graph is parsed, not imported), so a
failure lists *all* offenders at once.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lossdsl"
MAX_LINES = 300

# Lowest first; a module may import from its own layer or lower ones.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lossdsl.errors", "lossdsl.limits", "lossdsl.ops", "lossdsl.version"),
    ("lossdsl.language",),
    ("lossdsl.symbolic",),
    ("lossdsl.analysis",),
    ("lossdsl.lower",),
    ("lossdsl.backends",),
    ("lossdsl.keras",),
    ("lossdsl.tools", "lossdsl.losses", "lossdsl.boosting"),
    ("lossdsl", "lossdsl.__main__"),
)

PUBLIC_API = {
    "compile", "metric", "regularizer", "activity_penalty", "ActivityPenalty", "DSLLoss",
    "DSLMetric", "DSLRegularizer", "DSLActivityPenalty", "explain", "Explanation",
    "check_gradients", "GradientReport", "losses", "LossInputsModel",
    "LossDSLError", "DSLSyntaxError", "DSLNameError", "DSLArityError", "DSLAxisError",
    "DSLTypeError", "DSLLimitError", "DSLShapeError", "DSLConfigError", "GradientMismatchError",
    "LossDSLWarning",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions included), outside ``if TYPE_CHECKING:``."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imports_of(module: str) -> dict[str, int]:
    """The lossdsl modules ``module`` imports, each with the line of its first import."""
    targets: dict[str, int] = {}
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = _resolve(module, node)
            # `from lossdsl import limits` imports the module lossdsl.limits.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]
        for name in names:
            if name == "lossdsl" or name.startswith("lossdsl."):
                while name not in MODULES and "." in name:  # `import lossdsl.x.y as z` and the like
                    name = name.rpartition(".")[0]
                if name != module:
                    targets.setdefault(name, node.lineno)
    return targets


GRAPH: dict[str, dict[str, int]] = {module: _imports_of(module) for module in MODULES}


def _layer(module: str) -> int:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "lossdsl" and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    assert best is not None, f"{module} belongs to no layer: add its folder to LAYERS"
    return best[0]


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _where(module: str, target: str) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{GRAPH[module][target]}"


def test_the_import_graph_has_no_cycle():
    cycles = _cycles(GRAPH)
    lines = []
    for component in cycles:
        lines.append(" <-> ".join(component))
        lines += [f"    {_where(a, b)} imports {b}" for a in component for b in GRAPH[a]
                  if b in component]
    assert not cycles, "import cycles:\n" + "\n".join(lines)


def test_imports_point_only_down_the_pipeline():
    wrong = [f"{_where(module, target)}: {module} (layer {_layer(module)}) imports {target} "
             f"(layer {_layer(target)})"
             for module in MODULES for target in GRAPH[module] if _layer(target) > _layer(module)]
    assert not wrong, ("imports from a later stage (layers: "
                       + " < ".join("/".join(p.removeprefix("lossdsl.") for p in layer)
                                    for layer in LAYERS) + "):\n" + "\n".join(wrong))


def test_no_module_is_longer_than_300_lines():
    long = {str(path.relative_to(ROOT)): n for path in MODULES.values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(
        f"    {name}: {n}" for name, n in sorted(long.items(), key=lambda item: -item[1]))


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        _layer(module)


def test_the_layer_check_sees_what_it_should():
    """The parser of the graph itself: relative, function-level and TYPE_CHECKING imports."""
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lossdsl.keras import loss\n"
              "def f():\n    from lossdsl.tools import check\n")
    found = [node.module for node in _import_nodes(ast.parse(source))]
    assert sorted(found) == ["lossdsl.tools", "typing"]
    assert _layer("lossdsl.ops.table") == 0 and _layer("lossdsl.language.ir") == 1
    assert _layer("lossdsl") == _layer("lossdsl.__main__") == len(LAYERS) - 1
    assert _cycles({"a": {"b": 1}, "b": {"a": 1}, "c": {"a": 1}}) == [["a", "b"]]


def test_grammar_copies_are_identical():
    packaged = PACKAGE / "language" / "grammar.lark"
    for_readers = ROOT / "grammar" / "lossdsl.lark"
    assert packaged.read_bytes() == for_readers.read_bytes(), (
        "grammar/lossdsl.lark must be a copy of lossdsl/language/grammar.lark: "
        "cp lossdsl/language/grammar.lark grammar/lossdsl.lark")


def test_public_api_is_the_facade():
    import lossdsl

    assert set(lossdsl.__all__) == PUBLIC_API
    assert len(lossdsl.__all__) == len(set(lossdsl.__all__))
    for name in lossdsl.__all__:
        assert getattr(lossdsl, name) is not None, name


@pytest.mark.parametrize("name", ["analyze", "compile_expression", "CompiledExpression",
                                  "parse_source", "__version__"])
def test_internals_stay_reachable_outside_the_facade(name):
    import lossdsl

    assert name not in lossdsl.__all__ and getattr(lossdsl, name) is not None


def test_version_has_one_home():
    import lossdsl
    from lossdsl.version import __version__

    assert lossdsl.__version__ == __version__
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and 'path = "lossdsl/version.py"' in pyproject


def test_paths_named_in_the_docs_exist():
    """README.md and docs/*.md name modules by path; each must exist in the new layout."""
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"`((?:lossdsl|tests|examples|benchmarks|grammar|docs)/[\w./-]*)`",
                                 text):
            if not (ROOT / match.group(1)).exists():
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{doc.relative_to(ROOT)}:{line}: {match.group(1)}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)
