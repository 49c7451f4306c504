"""The house's layers: the notebooks' helpers and the local service share one neutral module
(``mme_helpers.sagemaker_hosting``) and nothing else; the helpers reach the service only through
the names ``mme_helpers.local`` exports."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import mme_helpers.local

PACKAGE = Path(__file__).resolve().parents[1] / "mme_helpers"
NEUTRAL = "mme_helpers.sagemaker_hosting"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> list[tuple[str, list[str]]]:
    """``(absolute module, imported names)`` of every import in ``path``, relative ones resolved;
    ``from mme_helpers import x`` counts as importing ``mme_helpers.x``."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [alias.name for alias in node.names]
            if base == "mme_helpers":
                found.extend((f"mme_helpers.{name}", []) for name in names)
            else:
                found.append((base, names))
    return found


def _is_local(module: str) -> bool:
    return module == "mme_helpers.local" or module.startswith("mme_helpers.local.")


def test_the_service_imports_only_the_neutral_module_from_the_helpers():
    crossings = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in sorted((PACKAGE / "local").rglob("*.py"))
        for module, _ in _imports(path)
        if module.startswith("mme_helpers") and not _is_local(module) and module != NEUTRAL
    ]
    assert crossings == []


def test_the_helpers_use_only_the_service_packages_exports():
    exported = set(mme_helpers.local.__all__)
    crossings = []
    for path in sorted(PACKAGE.glob("*.py")):
        for module, names in _imports(path):
            if module.startswith("mme_helpers.local."):
                crossings.append(f"{path.name} imports {module}")
            elif module == "mme_helpers.local" and not set(names) <= exported:
                crossings.append(f"{path.name} imports {sorted(set(names) - exported)} from mme_helpers.local")
    assert crossings == []


def test_the_neutral_module_depends_on_neither_side():
    assert [module for module, _ in _imports(PACKAGE / "sagemaker_hosting.py") if module.startswith("mme_helpers")] == []


def test_notebooks_use_no_service_internals():
    crossings = []
    for path in sorted((PACKAGE.parent / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and "mme_helpers.local." in "".join(cell["source"]):
                crossings.append(path.name)
    assert crossings == []


def test_the_layer_check_sees_crossings_written_as_relative_imports(tmp_path):
    source = tmp_path / "fake.py"
    source.write_text("from ...fleet import train_here\nfrom ... import eviction\nfrom ..config import HOST\n")
    assert _imports(source, "mme_helpers.local.runtime.fake") == [
        ("mme_helpers.fleet", ["train_here"]),
        ("mme_helpers.eviction", []),
        ("mme_helpers.local.config", ["HOST"]),
    ]
