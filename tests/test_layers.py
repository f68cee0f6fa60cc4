"""The layers, read from the source (every import statement, also those inside functions, and literal
``importlib.import_module`` calls): gasolve's core never imports the network packages nnselect and symnet, only its
CLI (``gasolve.cli``) does, and the network packages never import the CLI.

The core must run, be tested and be read without JAX; the CLI is the one place that puts the three together.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("nnselect", "symnet")
CLI = "gasolve.cli"


def module_name(path: Path) -> str:
    """Dotted name of a module file under :data:`ROOT` (a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    base = module.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, target] if target else base)


def imported_names(path: Path) -> set[str]:
    """Every module name ``path`` imports, absolute; ``from a import b`` gives both ``a`` and ``a.b``."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module) if node.level else node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if function in ("import_module", "__import__"):
                first = node.args[0]
                if isinstance(first, ast.JoinedStr) and first.values:  # f"nnselect.configs.{name}": its fixed start
                    first = first.values[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value.rstrip("."))
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_walker_sees_imports_inside_functions():
    """The CLI imports both network packages only inside its command functions: the walk must see them, or the
    tests below could not fail."""
    cli = set().union(*(imported_names(path) for path in _modules(CLI.replace(".", "/"))))
    for package in NETWORKS:
        assert any(_within(name, package) for name in cli), package
    assert len(_modules("gasolve")) > 40 and _modules("nnselect") and _modules("symnet")


def test_gasolve_outside_the_cli_never_imports_the_network_packages():
    core = [path for path in _modules("gasolve") if not _within(module_name(path), CLI)]
    wrong = {
        module_name(path): sorted(name for name in imported_names(path) if any(_within(name, p) for p in NETWORKS))
        for path in core
    }
    wrong = {module: names for module, names in wrong.items() if names}
    assert not wrong, f"only {CLI} may import {' and '.join(NETWORKS)}; these modules do: {wrong}"


def test_the_network_packages_never_import_the_cli():
    wrong = {
        module_name(path): sorted(name for name in imported_names(path) if _within(name, CLI))
        for package in NETWORKS
        for path in _modules(package)
    }
    wrong = {module: names for module, names in wrong.items() if names}
    assert not wrong, f"the CLI sits above the network packages; these modules import it: {wrong}"
