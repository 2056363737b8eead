"""The layering of docs/ARCHITECTURE.md holds: every import in fastsource/ (at module level or inside a
function) points down the layers or stays in its own, and no files and no folders import each other
in a cycle. Read from the source with `ast`; nothing is imported. The checker is also fed synthetic
packages to show that it fails on an upward import, a cycle of files, a cycle made by a lazy import,
and a cycle of folders."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fastsource"

# Layers, bottom up, as module-name prefixes (the longest matching prefix decides). A module may import
# its own layer and the layers listed as allowed for it; anything else is an upward (or sideways)
# import. The compiled units live in their layers (the consumer in kafka, the builders and the JSON
# pre-scan in formats); `fastsource._librdkafka`, which loads librdkafka and imports the consumer for
# `fastsource/__init__`, is at the top with it.
LAYERS: dict[str, tuple[str, ...]] = {
    "common": ("fastsource.errors", "fastsource.validation"),
    "base": ("fastsource.base",),
    "formats": ("fastsource.formats",),
    "kafka": ("fastsource.kafka",),
    "runtime": ("fastsource.runtime",),
    "api": ("fastsource", "fastsource._librdkafka", "fastsource.source", "fastsource.io", "fastsource.ray", "fastsource.polars",
            "fastsource.cli", "fastsource.broker", "fastsource.registry", "fastsource._local",
            "fastsource.__main__"),
    "benchmark": ("fastsource.benchmark",),
}
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "base": {"common"},
    "formats": {"common"},
    "kafka": {"common", "base", "formats"},
    "runtime": {"common", "base"},  # works on the neutral spec: neither Kafka nor formats
    "api": {"common", "base", "formats", "kafka", "runtime"},
    "benchmark": {"common", "base", "formats", "kafka", "runtime", "api"},  # a leaf nothing imports
}
# The benchmark is a leaf: only the command line reaches it, and only inside a function (on demand).
BENCHMARK_IMPORTERS = ("fastsource.cli",)

# Imports inside functions that close a cycle, each allowed for the reason given (and checked to be
# still there and still lazy, so that a stale entry fails too).
LAZY_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("fastsource.formats", "fastsource.formats.avro"):
        "as_format('avro') resolves the schema format by name on use: importing fastsource.formats must "
        "not need fastavro (an extra), and avro.py builds on the Format base class of the package",
    ("fastsource.formats", "fastsource.formats.protobuf"):
        "as_format('protobuf') likewise: importing fastsource.formats must not need protobuf (an extra)",
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    lazy: bool  # inside a function (runs on call, not on import)


def layer_of(module: str) -> str:
    best, best_len = None, -1
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = layer, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return best


def folder_of(module: str, packages: set[str]) -> Optional[str]:
    """The sub-package a module lives in (a package's own __init__ is in it); None for the files at
    the top of fastsource/, which the file graph covers."""
    folder = module if module in packages else module.rpartition(".")[0]
    return folder if folder != "fastsource" else None


def discover(root: Path = PACKAGE) -> tuple[dict[str, str], set[str]]:
    """Every module of the package with its source (compiled units with none), and the packages."""
    sources: dict[str, str] = {}
    packages: set[str] = set()
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or path.suffix not in (".py", ".pyx"):
            continue
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
            packages.add(".".join(parts))
        name = ".".join(parts)
        sources[name] = path.read_text() if path.suffix == ".py" else ""
    return sources, packages


def imports_of(module: str, source: str, known: set[str], packages: set[str]) -> list[Import]:
    """The package's modules `module` imports (at module level, in a class or in a function)."""
    found: list[Import] = []
    is_package = module in packages

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, child.lineno, lazy)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    if f"{base}.{alias.name}" in known:
                        add(f"{base}.{alias.name}", child.lineno, lazy)
                    else:
                        add(base, child.lineno, lazy)
            visit(child, inner)

    def add(name: str, line: int, lazy: bool) -> None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.append(Import(module, name, line, lazy))

    visit(ast.parse(source, module), False)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return found


def violations(sources: dict[str, str], packages: set[str],
               exceptions: dict[tuple[str, str], str] = LAZY_EXCEPTIONS) -> list[str]:
    """Every breach of the rules, in words (empty: the layering holds)."""
    known = set(sources)
    edges = [imp for module, source in sources.items() for imp in imports_of(module, source, known, packages)]
    problems: list[str] = []
    for imp in edges:
        mine, theirs = layer_of(imp.importer), layer_of(imp.imported)
        where = f"{imp.importer} (line {imp.line}) imports {imp.imported}"
        if theirs == "benchmark" and mine != "benchmark":
            if not (imp.lazy and imp.importer.startswith(BENCHMARK_IMPORTERS)):
                problems.append(f"{where}: only the command line imports the benchmark, inside a function")
        elif theirs != mine and theirs not in ALLOWED[mine]:
            problems.append(f"{where}: layer {mine} must not import layer {theirs}")
    excused = {(imp.importer, imp.imported) for imp in edges if imp.lazy} & set(exceptions)
    for pair in sorted(set(exceptions) - excused):
        problems.append(f"stale exception {pair[0]} -> {pair[1]}: that lazy import is gone")
    files: dict[str, set[str]] = {}
    folders: dict[str, set[str]] = {}
    for imp in edges:
        if imp.lazy and (imp.importer, imp.imported) in excused:
            continue
        files.setdefault(imp.importer, set()).add(imp.imported)
        a, b = folder_of(imp.importer, packages), folder_of(imp.imported, packages)
        if a is not None and b is not None and a != b:
            folders.setdefault(a, set()).add(b)
    problems += [f"files import each other in a cycle: {' <-> '.join(c)}" for c in cycles(files)]
    problems += [f"folders import each other in a cycle: {' <-> '.join(c)}" for c in cycles(folders)]
    return problems


# ---------------------------------------------------------------------------------------- the package


def test_every_module_belongs_to_a_layer():
    sources, _ = discover()
    assert len(sources) > 50
    assert {layer_of(m) for m in sources} == set(LAYERS)


def test_the_package_has_no_upward_import_and_no_cycle():
    sources, packages = discover()
    assert violations(sources, packages) == []


def test_the_base_imports_nothing_of_kafka_and_the_runtime_no_connector():
    """The two rules the layering exists for, spelled out (they follow from ALLOWED)."""
    sources, packages = discover()
    known = set(sources)
    for module, source in sources.items():
        targets = {imp.imported for imp in imports_of(module, source, known, packages)}
        if layer_of(module) == "base":
            assert not {t for t in targets if layer_of(t) not in ("common", "base")}, module
        if layer_of(module) == "runtime":
            assert not {t for t in targets if layer_of(t) in ("kafka", "formats", "api")}, module


@pytest.mark.parametrize("pair", sorted(LAZY_EXCEPTIONS))
def test_each_excepted_cycle_is_lazy_and_still_needed(pair):
    """An exception names a cycle that exists only through an import inside a function: the module
    imports at load time without the other side (so an optional extra is not needed to import it)."""
    sources, packages = discover()
    importer, imported = pair
    found = [imp for imp in imports_of(importer, sources[importer], set(sources), packages)
             if imp.imported == imported]
    assert found and all(imp.lazy for imp in found)
    back = {imp.imported for imp in imports_of(imported, sources[imported], set(sources), packages)}
    assert importer in back  # without the exception this pair would be a cycle


# ------------------------------------------------------------------ the checker fails when it should

SYNTHETIC_PACKAGES = {"fastsource", "fastsource.base", "fastsource.kafka", "fastsource.runtime"}


def synthetic(**files: str) -> dict[str, str]:
    modules = {"fastsource.errors": "", "fastsource.base.split": "", "fastsource.kafka.split": "",
               "fastsource.runtime.stream": ""}
    modules.update({name.replace("__", "."): text for name, text in files.items()})
    return modules


def test_checker_accepts_a_clean_synthetic_package():
    modules = synthetic(fastsource__kafka__reader="from fastsource.base.split import Split\n"
                                                  "from fastsource.errors import ConfigError\n")
    assert violations(modules, SYNTHETIC_PACKAGES, {}) == []


def test_checker_fails_on_an_upward_import():
    modules = synthetic(fastsource__base__split="from fastsource.kafka.split import KafkaPartitionSplit\n")
    assert violations(modules, SYNTHETIC_PACKAGES, {}) == [
        "fastsource.base.split (line 1) imports fastsource.kafka.split: layer base must not import layer kafka"]


def test_checker_fails_on_a_runtime_import_of_kafka_even_inside_a_function():
    modules = synthetic(fastsource__runtime__stream="def f():\n    import fastsource.kafka.split\n")
    assert violations(modules, SYNTHETIC_PACKAGES, {}) == [
        "fastsource.runtime.stream (line 2) imports fastsource.kafka.split: layer runtime must not import "
        "layer kafka"]


def test_checker_fails_on_a_cycle_of_files_made_by_a_lazy_import():
    modules = synthetic(fastsource__kafka__a="from fastsource.kafka import b\n",
                        fastsource__kafka__b="def f():\n    from fastsource.kafka.a import x\n")
    assert violations(modules, SYNTHETIC_PACKAGES, {}) == [
        "files import each other in a cycle: fastsource.kafka.a <-> fastsource.kafka.b"]
    excused = {("fastsource.kafka.b", "fastsource.kafka.a"): "reason"}
    assert violations(modules, SYNTHETIC_PACKAGES, excused) == []


def test_checker_fails_on_a_stale_exception():
    assert violations(synthetic(), SYNTHETIC_PACKAGES, {("fastsource.kafka.a", "fastsource.kafka.b"): "x"}) == [
        "stale exception fastsource.kafka.a -> fastsource.kafka.b: that lazy import is gone"]


def test_checker_fails_on_a_cycle_of_folders_without_a_cycle_of_files():
    packages = SYNTHETIC_PACKAGES | {"fastsource.kafka.reader", "fastsource.kafka.enumerator"}
    modules = synthetic(fastsource__kafka__reader__a="from fastsource.kafka.enumerator.b import x\n",
                        fastsource__kafka__enumerator__b="", fastsource__kafka__enumerator__c="",
                        fastsource__kafka__reader__d="",
                        fastsource__kafka__enumerator__e="from fastsource.kafka.reader.d import y\n")
    assert violations(modules, packages, {}) == [
        "folders import each other in a cycle: fastsource.kafka.enumerator <-> fastsource.kafka.reader"]


def test_checker_fails_when_the_package_imports_the_benchmark():
    modules = synthetic(fastsource__benchmark__suite="", fastsource__source="import fastsource.benchmark.suite\n",
                        fastsource__cli__main="def bench():\n    from fastsource.benchmark.suite import main\n")
    assert violations(modules, SYNTHETIC_PACKAGES | {"fastsource.cli", "fastsource.benchmark"}, {}) == [
        "fastsource.source (line 1) imports fastsource.benchmark.suite: only the command line imports the "
        "benchmark, inside a function"]
