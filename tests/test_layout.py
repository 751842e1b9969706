"""The layout's walls, read from the imports: which room may use which, module sizes, and that
only the settings read the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "analytics")
KERNEL = frozenset({
    "edge", "edge.config", "edge.errors", "edge.logs", "edge.redis_client", "edge.signing",
    "edge.backoff", "edge.streams", "edge.web", "edge.clock", "edge.gc_tuning", "edge.spelling",
    "edge.exact_json", "edge.openapi", "edge.docs", "edge.shutdown",
})
ROOMS = ("edge.hotpath", "edge.registry", "edge.sso", "edge.cli", "edge.events",
         "edge.description")
# What analytics may use of the registry: tokens and partner reads (and their keys and models).
REGISTRY_FOR_ANALYTICS = frozenset({
    "edge.registry.tokens", "edge.registry.partners", "edge.registry.model",
    "edge.registry.keys", "edge.registry.destinations", "edge.registry.edits",
    # The partner portal lists and pages a partner's links and draws their QR codes.
    "edge.registry.paging", "edge.registry.qr",
})
MAX_MODULE_LINES = 400
LONG_MODULES_ALLOWED = frozenset({"analytics/schema.py"})  # frozen migrations


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports_of(path: Path) -> set[str]:
    """Every project module the file imports, at any depth (lazy imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules = project_modules()
    return {name for name in found if name in modules}


def within(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


IMPORTS = {name: imports_of(path) for name, path in project_modules().items()}


def offenders(importer_in: str, imported_in: tuple[str, ...],
              exempt: frozenset[str] = frozenset()) -> list[str]:
    return sorted(
        f"{importer} imports {imported}"
        for importer, imported_names in IMPORTS.items()
        if within(importer, importer_in) and importer not in exempt
        for imported in imported_names
        if any(within(imported, room) for room in imported_in)
    )


def test_only_the_cli_on_the_edge_side_imports_analytics() -> None:
    found = [line for line in offenders("edge", ("analytics",))
             if not line.startswith("edge.cli")]
    assert found == []


def test_the_registry_never_imports_the_sso_room() -> None:
    assert offenders("edge.registry", ("edge.sso", "edge.cli", "edge.hotpath")) == []


def test_the_hot_path_imports_neither_sso_cli_nor_admin_routes() -> None:
    assert offenders("edge.hotpath", ("edge.sso", "edge.cli", "edge.registry.admin")) == []


def test_the_events_intake_uses_the_kernel_only() -> None:
    assert offenders("edge.events", ("edge.hotpath", "edge.registry", "edge.sso",
                                     "edge.cli")) == []


def test_the_sso_room_never_imports_the_cli() -> None:
    assert offenders("edge.sso", ("edge.cli",)) == []


def test_the_kernel_imports_no_room() -> None:
    kernel_importers = [name for name in IMPORTS if name in KERNEL]
    found = sorted(
        f"{importer} imports {imported}"
        for importer in kernel_importers
        for imported in IMPORTS[importer]
        if any(within(imported, room) for room in ROOMS) or within(imported, "analytics")
    )
    assert found == []


def test_analytics_uses_only_the_kernel_and_registry_reads_of_the_edge() -> None:
    found = sorted(
        f"{importer} imports {imported}"
        for importer, imported_names in IMPORTS.items()
        if within(importer, "analytics") and importer != "analytics.all_in_one"
        for imported in imported_names
        if within(imported, "edge") and imported not in KERNEL
        and imported not in REGISTRY_FOR_ANALYTICS and imported != "edge.registry"
    )
    assert found == []


@pytest.mark.parametrize("name", sorted(project_modules()))
def test_no_module_is_past_400_lines(name: str) -> None:
    path = project_modules()[name]
    relative = path.relative_to(ROOT).as_posix()
    if relative in LONG_MODULES_ALLOWED:
        return
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{relative} has {lines} lines: split it by concern"


def writes_environment(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                return True
        if isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            if called in ("os.putenv", "os.unsetenv") or (
                called.startswith("os.environ.")
                and called.rsplit(".", 1)[1] in ("update", "setdefault", "pop", "clear")
            ):
                return True
    return False


def test_nothing_writes_the_environment() -> None:
    found = [name for name, path in project_modules().items()
             if writes_environment(ast.parse(path.read_text()))]
    assert found == []


def test_only_the_settings_read_the_environment() -> None:
    readers = sorted(
        name for name, path in project_modules().items()
        if "os.environ" in path.read_text() or "os.getenv" in path.read_text()
    )
    assert readers == ["edge.config"]
