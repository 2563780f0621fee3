"""afmio's import graph keeps its layers: no cycle, nothing imported from a low module back
up, a format-free data model, readers and writers apart, and every reader registered.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import``,
at module level and inside functions, relative ones resolved. Imports under ``if`` (such
as ``TYPE_CHECKING``) count as module level, so that no cycle can hide behind one.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import afmio
from afmio import readers

SRC = Path(__file__).resolve().parents[1] / "src"

#: The low modules, with ``afmio.readers`` and all below it: they import only each other.
LOW = ("afmio.errors", "afmio.lazy", "afmio.recording", "afmio.model", "afmio.layouts")


@dataclass(frozen=True)
class Import:
    """One import of an afmio module by another."""

    importer: str
    target: str
    where: str
    in_function: bool

    def __str__(self) -> str:
        level = "in a function" if self.in_function else "at module level"
        return f"{self.importer} imports {self.target} ({self.where}, {level})"


@cache
def modules(src: Path) -> dict[str, Path]:
    """Every module of the ``afmio`` package under ``src``, by dotted name."""
    found = {}
    for path in sorted((src / "afmio").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _targets(src: Path, importer: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The afmio modules one import statement loads: a name imported from a package is
    its submodule if there is one, else the package itself."""
    known = modules(src)
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
            parent = package.rsplit(".", node.level - 1)[0]
            base = f"{parent}.{base}" if base else parent
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    return [name for name in dict.fromkeys(names) if name in known and name != importer]


@cache
def imports(src: Path = SRC) -> tuple[Import, ...]:
    """Every import of an afmio module by another, anywhere in the modules under ``src``."""
    found = []
    for importer, path in modules(src).items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        inside = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                where = f"{path.relative_to(src.parent)}:{node.lineno}"
                for target in _targets(src, importer, path, node):
                    found.append(Import(importer, target, where, id(node) in inside))
    return tuple(found)


def find_cycle(edges: list[Import]) -> list[Import] | None:
    """One cycle of the graph ``edges`` make, as the imports that close it, or None."""
    by_importer: dict[str, list[Import]] = {}
    for edge in edges:
        by_importer.setdefault(edge.importer, []).append(edge)
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[Import] = []

    def visit(module: str) -> list[Import] | None:
        state[module] = "open"
        for step in by_importer.get(module, ()):
            if state.get(step.target) == "open":
                first = next(i for i, s in enumerate(path) if s.importer == step.target)
                return [*path[first:], step]
            if step.target not in state:
                path.append(step)
                if cycle := visit(step.target):
                    return cycle
                path.pop()
        state[module] = "done"
        return None

    for module in sorted(by_importer):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def within(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or one of its modules."""
    return module == package or module.startswith(package + ".")


def is_low(module: str) -> bool:
    """Whether ``module`` is in the low layers, which never import from above."""
    return module in LOW or within(module, "afmio.readers")


def listing(what: str, found: list[Import]) -> str:
    """A failure message naming every offending import."""
    return what + ":\n  " + "\n  ".join(map(str, found))


def test_the_walker_finds_every_kind_of_import(tmp_path):
    files = {
        "__init__.py": "from .api import open\n",
        "api.py": "import os\nfrom . import readers\n",
        "errors.py": "",
        "lazy.py": "import typing\nif typing.TYPE_CHECKING:\n    from . import export\n",
        "export.py": "import afmio.lazy as lazy\n",
        "readers/__init__.py": "from . import asd\nfrom .base import Reader\n",
        "readers/base.py": "",
        "readers/asd.py": "from ..errors import E\n\ndef f():\n    from .. import export\n",
    }
    src = tmp_path / "src"
    for name, text in files.items():
        (src / "afmio" / name).parent.mkdir(parents=True, exist_ok=True)
        (src / "afmio" / name).write_text(text)
    found = {(i.importer, i.target, i.in_function) for i in imports(src)}
    assert found == {
        ("afmio", "afmio.api", False),
        ("afmio.api", "afmio.readers", False),
        ("afmio.lazy", "afmio.export", False),
        ("afmio.export", "afmio.lazy", False),
        ("afmio.readers", "afmio.readers.asd", False),
        ("afmio.readers", "afmio.readers.base", False),
        ("afmio.readers.asd", "afmio.errors", False),
        ("afmio.readers.asd", "afmio.export", True),
    }
    # The cycle behind TYPE_CHECKING is found; the import inside f() closes none.
    cycle = find_cycle([i for i in imports(src) if not i.in_function])
    assert [str(i) for i in cycle] == [
        "afmio.export imports afmio.lazy (src/afmio/export.py:1, at module level)",
        "afmio.lazy imports afmio.export (src/afmio/lazy.py:3, at module level)",
    ]


def test_no_import_cycle_at_module_level():
    cycle = find_cycle([i for i in imports() if not i.in_function])
    assert cycle is None, listing("import cycle", cycle)


def test_low_modules_import_nothing_above_them():
    up = [i for i in imports() if is_low(i.importer) and not is_low(i.target)]
    assert not up, listing("imports from a low module up", up)


def test_lazy_and_model_know_no_reader_and_no_layout():
    bad = [
        i
        for i in imports()
        if i.importer in ("afmio.lazy", "afmio.model")
        and (within(i.target, "afmio.readers") or i.target == "afmio.layouts")
    ]
    assert not bad, listing("format knowledge in the data model", bad)


def test_readers_and_writers_do_not_import_each_other():
    crossed = [
        i
        for i in imports()
        if (within(i.importer, "afmio.readers") and within(i.target, "afmio.writers"))
        or (within(i.importer, "afmio.writers") and within(i.target, "afmio.readers"))
    ]
    assert not crossed, listing("imports between readers and writers", crossed)


def test_every_reader_module_is_registered_and_listed():
    names = sorted(
        p.stem
        for p in (SRC / "afmio" / "readers").glob("*.py")
        if not p.stem.startswith("_") and p.stem != "base"
    )
    defined = []
    for name in names:
        module = importlib.import_module(f"afmio.readers.{name}")
        reader = getattr(module, "READER", None)
        assert isinstance(reader, readers.Reader), f"afmio.readers.{name} defines no READER"
        assert any(r is reader for r in readers.READERS), (
            f"afmio.readers.{name}.READER is not in afmio.readers.READERS"
        )
        defined.append(reader)
    strays = [r.name for r in readers.READERS if not any(r is d for d in defined)]
    assert not strays, f"READERS holds readers of no reader module: {strays}"
    listed = afmio.formats()
    for reader in readers.READERS:
        assert reader.format in listed, f"reader {reader.name} is not in afmio.formats()"
