"""The shape the code keeps: ui lays out and binds, tasks build requests, backends generate."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qwen_playground"


def modules(folder: str):
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_no_ui_module_builds_a_request():
    found = [f"{path.name}:{node.lineno}" for path, tree in modules("ui") for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Request"]
    assert found == []


def test_functions_in_ui_and_tasks_stay_short():
    long = [f"{path.parent.name}/{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for folder in ("ui", "tasks") for path, tree in modules(folder) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert long == []


def test_nothing_below_ui_imports_gradio():
    imports = [str(path.relative_to(PACKAGE)) for path, tree in modules(".") if path.relative_to(PACKAGE).parts[0] != "ui"
               for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               and any((alias.name if isinstance(node, ast.Import) else node.module or "").startswith("gradio") for alias in node.names)]
    assert imports == []


def test_no_family_name_is_compared_in_python_outside_the_registry():
    """Family names live in the registry's data; code asks a family's traits."""
    names = {"qwen3", "qwen3.5", "qwen3-2507-instruct", "qwen3-2507-thinking", "qwen2.5", "qwen2.5-coder", "qwen2.5-math", "qwen2.5-vl"}
    found = [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}" for path in sorted(PACKAGE.rglob("*.py")) if path.name != "registry.py"
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.Constant) and node.value in names]
    assert found == []


def test_every_visible_input_has_a_label():
    """A component made by mistake (say, an update built inside a layout) shows as a bare 'Checkbox' or 'Textbox'."""
    from qwen_playground.core.config import load_config
    from qwen_playground.ui import build_demo

    demo = build_demo(load_config(demo=True))
    unlabeled = [c["type"] for c in demo.config["components"] if c["type"] in ("checkbox", "textbox", "slider", "dropdown", "radio")
                 and c.get("props", {}).get("visible", True) and not c.get("props", {}).get("label")
                 and c.get("props", {}).get("show_label", True)]
    assert unlabeled == []


# Layers, lowest first: a module may import its own layer and the ones below, never one above. The modules left at
# the package root are domain helpers (math text, code blocks, languages, images, the arena's store, lessons, the
# sandbox): any layer may use them, and they use only core/.
RANKS = {"core": 0, "helpers": 1, "tools": 1, "backends": 2, "service": 3, "tasks": 4, "ui": 5}


def layer_of(module: str) -> str:
    """'qwen_playground.tasks.chat' -> 'tasks'; 'qwen_playground.mathtext' -> 'helpers'."""
    parts = module.split(".")[1:]
    return parts[0] if parts and parts[0] in RANKS else "helpers"


def test_every_package_has_a_rank():
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert packages == set(RANKS) - {"helpers"}


def imported_modules(path: Path, tree: ast.AST) -> set[str]:
    package = ["qwen_playground", *path.relative_to(PACKAGE).with_suffix("").parts[:-1]]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            found |= {".".join([*base, *(node.module.split(".") if node.module else []), *([alias.name] if not node.module else [])])
                      for alias in node.names}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
            found |= {name for name in names if name and name.startswith("qwen_playground")}
    return found


def test_imports_point_down_the_layers():
    upward = []
    for path, tree in modules("."):
        here = layer_of(".".join(["qwen_playground", *path.relative_to(PACKAGE).with_suffix("").parts]))
        for target in imported_modules(path, tree):
            if RANKS[layer_of(target)] > RANKS[here]:
                upward.append(f"{path.relative_to(PACKAGE)} ({here}) imports {target} ({layer_of(target)})")
    assert upward == []
