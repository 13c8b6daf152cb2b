"""The layering of docs/architecture.md holds in the code: every engine import goes down the drawing,
engine/models never imports engine/pipeline, and the add-on reaches the engine only through engine_link.py
(and only its errors, options and formats)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"


def drawn_rows() -> list[list[str]]:
    """The rows of the layer drawing in docs/architecture.md, top row first."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- layers:.*?-->\s*```text\n(.*?)```", text, re.S).group(1)
    return [line.split() for line in block.strip().splitlines()]


def drawing() -> dict[str, int]:
    """{package: row}, row 0 at the bottom."""
    rows = drawn_rows()
    return {name: len(rows) - 1 - i for i, row in enumerate(rows) for name in row}


def module_name(path: Path) -> str:
    """engine/a/b.py -> engine.a.b; engine/a/__init__.py -> engine.a."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The drawing's name for an engine module: its top-level package or module, or `engine` for the root."""
    parts = module.split(".")
    if len(parts) < 2:
        return "engine"
    top = parts[1]
    return top if (ENGINE / top).is_dir() or (ENGINE / f"{top}.py").is_file() else "engine"


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module `path` imports (at any depth of the file, relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def engine_edges() -> set[tuple[str, str, str]]:
    """(importing unit, imported unit, file) for every import between two engine units."""
    edges = set()
    for path in ENGINE.rglob("*.py"):
        module = module_name(path)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        source = unit(module)
        for name in imported_modules(path, package):
            if name.split(".")[0] == "engine" and unit(name) != source:
                edges.add((source, unit(name), str(path.relative_to(ROOT))))
    return edges


def test_every_engine_package_is_drawn():
    drawn = [name for row in drawn_rows() for name in row]
    units = {unit(module_name(path)) for path in ENGINE.rglob("*.py")}
    assert sorted(drawn) == sorted(units), f"drawn {sorted(drawn)}, in the code {sorted(units)}"


def test_imports_go_down_the_drawing():
    rows = drawing()
    upward = sorted(f"{path}: {a} (row {rows[a]}) imports {b} (row {rows[b]})"
                    for a, b, path in engine_edges() if rows[b] >= rows[a])
    assert not upward, "\n".join(upward)


def test_models_never_import_the_pipeline():
    offending = sorted(path for a, b, path in engine_edges() if a == "models" and b == "pipeline")
    assert not offending and ("pipeline", "models") in {(a, b) for a, b, _ in engine_edges()}, offending


def test_the_addon_reaches_the_engine_only_through_engine_link():
    seen = {}
    for path in (ROOT / "blender_addon").rglob("*.py"):
        package = ".".join(path.relative_to(ROOT).parent.parts)
        for name in imported_modules(path, package):
            if name.startswith(("engine.", "blender_addon.engine.")) or name in ("engine", "blender_addon.engine"):
                seen.setdefault(path.name, set()).add(name.removeprefix("blender_addon."))
            assert name.split(".")[0] not in {"torch", "scipy", "cv2", "OpenEXR"}, f"{path} imports {name}"
    assert set(seen) == {"engine_link.py"}, seen
    used = {name.split(".")[1] for name in seen["engine_link.py"] if "." in name}
    assert used == {"clips", "errors", "export", "formats", "models", "options", "protocol", "reporting"}


def test_the_engine_never_imports_bpy():
    for path in ENGINE.rglob("*.py"):
        names = imported_modules(path, "engine")
        assert not {n for n in names if n.split(".")[0] in {"bpy", "mathutils", "bpy_extras"}}, path
