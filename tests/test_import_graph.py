"""No import cycle among xablate's modules (hydra_plugins included), counting imports inside functions too: a
cycle broken only by a deferred import is still two modules that cannot be understood one before the other."""

import ast

from helpers import ROOT


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in [*ROOT.glob("xablate/**/*.py"), *ROOT.glob("hydra_plugins/**/*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = (path, ast.parse(path.read_text()))
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()

    def ours(name: str) -> str | None:  # the module (or package) of ours an imported name lives in
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, (path, tree) in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {ours(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets |= {ours(f"{base}.{alias.name}") if f"{base}.{alias.name}" in found else ours(base)
                            for alias in node.names}
        graph[name] = targets - {None, name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_made_up_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_ours_imports_itself_back():
    graph = import_graph()
    assert "xablate.schema" in graph and "xablate.config" in graph["xablate.training.job"]  # the graph is read
    assert cycles(graph) == []
