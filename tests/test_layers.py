"""The package's import graph has no cycles: no module, and no subpackage, imports (at module level) something
that imports it back. Read from the source with `ast`, nothing imported."""

import ast

from helpers import ROOT

PACKAGE = ROOT / "xablate"


def module_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xablate"):
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("xablate")]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in graph.get(node, ()):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    return found


def test_no_module_imports_itself_back():
    assert cycles(module_graph()) == []


def test_no_subpackage_imports_itself_back():
    graph = module_graph()
    top = lambda name: ".".join(name.split(".")[:2])  # noqa: E731
    packages: dict[str, set[str]] = {}
    for name, targets in graph.items():
        for target in targets:
            if top(name) != top(target):
                packages.setdefault(top(name), set()).add(top(target))
    assert cycles(packages) == []


def test_the_check_finds_a_cycle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
