"""Every repository path named in a docstring, comment or Markdown file exists.

A reference is a token like `models/layers.py`, `transformer_jax/run/`, or
`train/step.py:train_step` (then the name must be defined in that file; for a config file
`:arg` is a variant, not checked here). It resolves against the repository root, the package
directory, or the directory of the file naming it; a bare file name (as in a layout map) may
be any file of that name in the repository.
"""

import ast
import io
import pathlib
import re
import tokenize

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "transformer_jax"
# path[:name]; a path has a known extension or ends in "/" after a known top-level folder.
REFERENCE = re.compile(
    r"(?<![\w./:-])((?:[\w-]+/)*[\w-]+\.(?:py|md|sh|sbatch|toml|ini)|"
    r"(?:transformer_jax|experiments|tests|benchmarks|launch|docs)(?:/[\w-]+)*/)"
    r"(?::(\w+))?(?![\w/-])"
)
SCANNED = ["transformer_jax", "experiments", "tests", "benchmarks", "launch", "docs", ".ci"]


def _texts(path: pathlib.Path) -> list[str]:
    """The prose of a file: Markdown whole; Python docstrings and comments; shell comments."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return [text]
    if path.suffix != ".py":
        return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
    prose = [tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline)
             if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            prose.append(ast.get_docstring(node) or "")
    return prose


def _files() -> list[pathlib.Path]:
    files = [ROOT / name for name in ("README.md", "BENCHMARKS.md") if (ROOT / name).exists()]
    for folder in SCANNED:
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file()
                  and p.suffix in (".py", ".md", ".sh", ".sbatch", "") and "__pycache__" not in
                  p.parts and (p.suffix or p.name == "run")]
    return files


def _resolve(reference: str, where: pathlib.Path) -> pathlib.Path | None:
    for base in (ROOT, PACKAGE, where.parent):
        if (base / reference).exists():
            return base / reference
    if "/" not in reference:
        return next((p for folder in SCANNED for p in (ROOT / folder).rglob(reference)), None)
    return None


def _defines(path: pathlib.Path, name: str) -> bool:
    source = path.read_text(encoding="utf-8")
    return re.search(rf"^\s*(?:def|class)\s+{name}\b|^{name}\s*[:=]", source, re.M) is not None


def test_every_named_repository_path_exists():
    missing = []
    for path in _files():
        for text in _texts(path):
            for match in REFERENCE.finditer(text):
                reference, name = match.groups()
                found = _resolve(reference, path)
                if found is None:
                    missing.append(f"{path.relative_to(ROOT)}: {reference}")
                elif (name and found.suffix == ".py" and found.parent.name != "configs"
                      and not _defines(found, name)):
                    missing.append(f"{path.relative_to(ROOT)}: {reference}:{name}")
    assert not missing, "stale references:\n" + "\n".join(sorted(set(missing)))


def test_the_scanner_finds_references():
    # Guards the test above against a pattern that silently matches nothing.
    found = [m.group(0) for m in REFERENCE.finditer(
        "see models/layers.py, `train/step.py:train_step` and transformer_jax/run/")]
    assert found == ["models/layers.py", "train/step.py:train_step", "transformer_jax/run/"]
