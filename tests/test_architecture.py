"""The folder tree is the architecture: these tests keep its layers and keep it free of cycles.

Imports are read from the source with `ast`, those inside functions too (a
lazy import is still a dependency); only `if TYPE_CHECKING:` blocks are left
out, since they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ocr_backend"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:`."""
    kept, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        kept.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return kept


def imports_of(path: Path) -> set[str]:
    """The absolute names of the modules `path` imports (`from x import y` counts x and x.y)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {
    name: {other for other in imports_of(path) if other in MODULES and other != name}
    for name, path in MODULES.items()
}


def in_layer(module: str, *layers: str) -> bool:
    return any(
        module == f"ocr_backend.{layer}" or module.startswith(f"ocr_backend.{layer}.")
        for layer in layers
    )


# The layers, lowest first: a module may import its own layer and those below, never one
# above. Each name is a top-level module or package of ocr_backend.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "settings", "metrics", "logs", "processes"),  # leaves every layer may use
    ("images",),  # task images: bytes -> decoded planes, crops; knows nothing of OCR
    ("ocr",),  # readers, the local and cluster engines, the drawn-crop strategy
    ("engine",),  # the engine's face
    ("label_studio",),  # label config, regions, tokens, storage, the API client
    ("convert", "priority"),  # lines -> Label Studio results; people before bulk work
    ("predictor",),  # a page or a drawn region -> a prediction
    ("jobs", "training", "documents"),  # bulk work, fine-tuning, PDFs
    ("http", "api"),  # the HTTP face
    ("commands", "__main__"),  # the command line
]


def layer_of(module: str) -> int | None:
    if module == "ocr_backend":  # the package's __init__: its version only
        return 0
    for rank, layer in enumerate(LAYERS):
        if in_layer(module, *layer):
            return rank
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a higher layer than the importer's, as `a -> b`."""
    found = []
    for module, imported in sorted(graph.items()):
        rank = layer_of(module)
        for other in sorted(imported):
            other_rank = layer_of(other)
            if rank is not None and other_rank is not None and other_rank > rank:
                found.append(f"{module} -> {other}")
    return found


def test_every_module_has_a_layer():
    assert sorted(m for m in GRAPH if layer_of(m) is None) == []


def test_nothing_imports_upward():
    assert upward_imports(GRAPH) == []


def test_the_layering_check_sees_a_broken_rule():
    # Each of these, added to the real graph, must be reported.
    for module, upward in [
        ("ocr_backend.ocr.lines", "ocr_backend.jobs.store"),
        ("ocr_backend.predictor", "ocr_backend.jobs.runner"),
        ("ocr_backend.images.fetch", "ocr_backend.ocr.lines"),
        ("ocr_backend.label_studio.config", "ocr_backend.convert"),
        ("ocr_backend.engine", "ocr_backend.predictor"),
    ]:
        broken = {name: set(imported) for name, imported in GRAPH.items()}
        broken[module].add(upward)
        new = set(upward_imports(broken)) - set(upward_imports(GRAPH))
        assert new == {f"{module} -> {upward}"}
    broken = {name: set(imported) for name, imported in GRAPH.items()}
    broken["ocr_backend.commands.annotate"].add("ocr_backend.http.routes")
    new = set(commands_importing_http(broken)) - set(commands_importing_http(GRAPH))
    assert new == {"ocr_backend.commands.annotate -> ocr_backend.http.routes"}


@pytest.mark.parametrize(
    "module", sorted(m for m in GRAPH if in_layer(m, "ocr", "images", "engine"))
)
def test_ocr_and_images_know_nothing_of_label_studio_http_or_jobs(module):
    above = sorted(m for m in GRAPH[module] if in_layer(m, "label_studio", "http", "jobs", "api"))
    assert above == [], f"{module} imports {above}"


def commands_importing_http(graph: dict[str, set[str]]) -> list[str]:
    """The command line builds the app through api.py; it never reaches into http/."""
    return [
        f"{module} -> {other}"
        for module, imported in sorted(graph.items())
        if in_layer(module, "commands", "__main__")
        for other in sorted(imported)
        if in_layer(other, "http")
    ]


def test_commands_do_not_import_http():
    assert commands_importing_http(GRAPH) == []


def test_label_studio_does_not_import_convert():
    # convert.py turns lines into Label Studio results on top of label_studio/, not under it.
    importing = [
        m for m in GRAPH if in_layer(m, "label_studio") and "ocr_backend.convert" in GRAPH[m]
    ]
    assert sorted(importing) == []


def test_only_api_and_http_import_fastapi_or_starlette():
    web = sorted(
        name
        for name, path in MODULES.items()
        if any(
            i.split(".")[0] in ("fastapi", "fastapi_offline", "starlette") for i in imports_of(path)
        )
        and not (name == "ocr_backend.api" or in_layer(name, "http"))
    )
    assert web == []


def test_errors_is_a_leaf():
    assert GRAPH["ocr_backend.errors"] == set()


def test_no_import_cycle_anywhere():
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for other in sorted(GRAPH[module]):
            if state.get(other) == "open":
                cycles.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other, [*path, other])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_pure_conversion_code_loads_neither_torch_nor_prometheus():
    # __main__ must set PROMETHEUS_MULTIPROC_DIR before prometheus-client is first imported.
    code = (
        "import sys, ocr_backend.convert, ocr_backend.label_studio.regions, ocr_backend.ocr.drawn;"
        "print(sorted(m for m in ('torch', 'easyocr', 'prometheus_client', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
