"""The package layout: stages import only the stages below them, so there is no import loop."""

import ast
from pathlib import Path

ASR = Path(__file__).resolve().parents[1] / "asr"

# The pipeline from the bottom up: a stage may import itself and what is to its left, never to its right.
STAGES = [
    "utils",
    "audio",
    "features",
    "data",
    "decode",
    "model",
    "inference",
    "speakers",
    "evaluation",
    "train",
    "cli",
]


def imported_modules(path: Path) -> set[str]:
    """Every ``asr.*`` module ``path`` imports, at any depth of the file (function bodies too)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("asr."):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names if alias.name.startswith("asr.")}
    return modules


def stage_of(module: str) -> str:
    return module.split(".")[1]


def test_every_top_level_entry_is_a_stage_or_the_public_api():
    entries = {p.name for p in ASR.iterdir() if not p.name.startswith("__pycache__")}
    assert entries == set(STAGES) | {"__init__.py", "__main__.py", "pretrained"}


def test_stages_import_only_the_stages_below_them():
    upward = []
    for path in ASR.rglob("*.py"):
        relative = path.relative_to(ASR)
        if len(relative.parts) == 1:  # asr/__init__.py and __main__.py: the public API sits on top
            continue
        own = STAGES.index(relative.parts[0])
        for module in imported_modules(path):
            if STAGES.index(stage_of(module)) > own:
                upward.append(f"{relative} imports {module}")
    assert not upward, "\n".join(sorted(upward))


def test_only_the_entry_point_imports_the_command_line():
    importers = {
        str(p.relative_to(ASR))
        for p in ASR.rglob("*.py")
        if p.relative_to(ASR).parts[0] != "cli" and any(stage_of(m) == "cli" for m in imported_modules(p))
    }
    assert importers == {"__main__.py"}


def test_the_readme_layout_lists_every_module_under_its_folder():
    readme = (ASR.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```")[1].splitlines()
    listed = {}
    for line, following in zip(block, block[1:]):
        folder = line.split()[0] if line.startswith("  ") and line.split()[0].endswith("/") else None
        if folder and following.startswith(" " * 20):
            listed[folder.rstrip("/")] = set(following.split())
    on_disk = {}
    for path in ASR.rglob("*.py"):
        relative = path.relative_to(ASR)
        if len(relative.parts) > 1 and path.name != "__init__.py":
            on_disk.setdefault("/".join(relative.parts[:-1]), set()).add(path.name)
    assert listed == on_disk
