"""The chapters cannot rot: every `file.py:function` that README.md, docs/*.md or
benchmarks/results/*.md names must exist, and every relative link must point to a file
that exists.

A reference is written `path/to/file.py:name` (path from the repository root, as in
`pixelcnn_np/losses.py:bce_with_logits`), or `file.py:Class.method`. It holds when the
file exists and defines the name at module level: a `def`, a `class`, an assignment, or
an import that re-exports it (`from .pixelcnn import forward`), found by reading the
file's syntax tree; failing that, for files inside the package, by importing the module
and looking the name up. Everything is read from the tree as it is now, on every run: no
list of expected names is kept here, so a function moved to another file without its
chapter being updated fails this test, which is the point.

Negative controls: a made-up reference and a made-up link must be reported as missing,
so the checks cannot pass by checking nothing.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# `pixelcnn_np/conv.py:conv2d_forward`, `examples/tour.py:main`, `x.py:Class.method`.
# The lookbehind keeps a reference from starting inside a longer word or path.
REFERENCE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.py):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
# [text](target) and ![alt](target), with an optional "title".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def doc_files(root=ROOT):
    """README.md, every chapter in docs/ and every log in benchmarks/results/, as they are now."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")),
             *sorted((root / "benchmarks" / "results").glob("*.md"))]
    return [p for p in files if p.is_file()]


def find_references(text):
    """[(line number, path, name), ...] of every `file.py:name` in a Markdown text."""
    refs = []
    for number, line in enumerate(text.splitlines(), start=1):
        for m in REFERENCE.finditer(line):
            refs.append((number, m.group(1), m.group(2)))
    return refs


def find_links(text):
    """[(line number, target), ...] of every relative link outside fenced code blocks
    (web addresses, mail addresses and in-page anchors are not files, and are skipped)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)   # keep line numbers
    links = []
    for number, line in enumerate(text.splitlines(), start=1):
        for m in LINK.finditer(line):
            target = m.group(1)
            if "://" in target or target.startswith(("mailto:", "#")):
                continue
            links.append((number, target.split("#")[0].split("?")[0]))
    return links


def _module_level(body):
    """The module-level statements, looking inside `if` and `try` blocks too (an optional
    import guarded by try/except still defines its names at module level)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _module_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(node.body + node.orelse + node.finalbody
                                     + [s for h in node.handlers for s in h.body])


def _target_names(target):
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for t in target.elts:
            yield from _target_names(t)


def _defines(body, parts):
    """Does this list of statements define parts[0] (and, inside it, parts[1:])?"""
    name, rest = parts[0], parts[1:]
    for node in _module_level(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return not rest or (isinstance(node, ast.ClassDef) and _defines(node.body, rest))
        if rest:
            continue                                     # only a class can hold a dotted name
        if isinstance(node, ast.Assign) and any(name in _target_names(t) for t in node.targets):
            return True
        if isinstance(node, ast.AnnAssign) and name in _target_names(node.target):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name.split(".")[0]) == name for a in node.names):
            return True
    return False


def _found_by_import(path, parts):
    """For a file inside the package: import it and look the name up (for names made at
    import time, which the syntax tree cannot show)."""
    if not path.startswith("pixelcnn_np/"):
        return False
    try:
        obj = importlib.import_module(path[:-3].replace("/", "."))
        for part in parts:
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return False
    return True


def check_reference(path, name, root=ROOT, allow_import=True):
    """None if `path` (relative to root) exists and defines `name`; else why not."""
    file = root / path
    if not file.is_file():
        return f"{path}: no such file"
    parts = name.split(".")
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except SyntaxError as e:
        return f"{path}: cannot be parsed ({e})"
    if _defines(tree.body, parts):
        return None
    if allow_import and root == ROOT and _found_by_import(path, parts):
        return None
    return f"{path} defines no {name!r}"


def check_link(doc, target):
    """None if the link target, relative to the Markdown file's folder, exists; else why not."""
    if not target:
        return None
    if (doc.parent / target).exists():
        return None
    return f"{target}: no such file (relative to {doc.parent.name or '.'}/)"


def missing_references(doc, root=ROOT):
    """['README.md:12: `pixelcnn_np/x.py:f`: why', ...] for one Markdown file."""
    rel = doc.relative_to(root)
    return [f"{rel}:{line}: `{path}:{name}`: {why}"
            for line, path, name in find_references(doc.read_text(encoding="utf-8"))
            if (why := check_reference(path, name, root)) is not None]


def broken_links(doc, root=ROOT):
    rel = doc.relative_to(root)
    return [f"{rel}:{line}: {why}" for line, target in find_links(doc.read_text(encoding="utf-8"))
            if (why := check_link(doc, target)) is not None]


DOCS = doc_files()


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_named_function_exists(doc):
    missing = missing_references(doc)
    assert not missing, "references to functions that do not exist (moved or renamed?):\n" + "\n".join(missing)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_relative_link_exists(doc):
    broken = broken_links(doc)
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_there_is_something_to_check():
    """Positive control: the README and the chapters exist, every chapter names at least
    one function it explains, and the README links to every chapter."""
    chapters = sorted((ROOT / "docs").glob("*.md"))
    assert (ROOT / "README.md").is_file() and chapters
    for chapter in chapters:
        assert find_references(chapter.read_text(encoding="utf-8")), f"{chapter.name} names no `file.py:function`"
    readme_links = {t for _, t in find_links((ROOT / "README.md").read_text(encoding="utf-8"))}
    for chapter in chapters:
        assert f"docs/{chapter.name}" in readme_links, f"README.md does not link to docs/{chapter.name}"


def test_made_up_reference_is_reported_missing():
    """Negative control: a function that does not exist, in a file that does."""
    assert (ROOT / "pixelcnn_np" / "conv.py").is_file()
    why = check_reference("pixelcnn_np/conv.py", "no_such_function")
    assert why is not None and "no_such_function" in why
    assert check_reference("pixelcnn_np/no_such_file.py", "forward") is not None
    refs = find_references("see `pixelcnn_np/conv.py:no_such_function` and `pixelcnn_np/conv.py:conv2d_forward`")
    assert [(p, n) for _, p, n in refs] == [("pixelcnn_np/conv.py", "no_such_function"),
                                          ("pixelcnn_np/conv.py", "conv2d_forward")]


def test_checker_on_a_module_of_its_own(tmp_path):
    """What counts as defined, on a file written here (so the tree's changes cannot move it)."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "from .other import forward\n"
        "import numpy as np\n"
        "DEFAULTS = {}\n"
        "A, B = 1, 2\n"
        "try:\n    import torch\n    def twin():\n        pass\nexcept ImportError:\n    torch = None\n"
        "def step(x):\n    def inner():\n        pass\n    return x\n"
        "class Model:\n    def backward(self):\n        pass\n")
    ok = ["forward", "np", "DEFAULTS", "B", "torch", "twin", "step", "Model", "Model.backward"]
    for name in ok:
        assert check_reference("pkg/m.py", name, root=tmp_path) is None, name
    for name in ["inner", "backward", "Model.forward", "step.inner", "numpy", "other"]:
        assert check_reference("pkg/m.py", name, root=tmp_path) is not None, name


def test_reference_pattern():
    text = ("`pixelcnn_np/losses.py:bce_with_logits`, gated.py:shift_down_forward, "
            "`examples/tour.py`: a tour, x.py:Checkpoint.params, https://host/a.py:80 and notapy:x")
    found = [(p, n) for _, p, n in find_references(text)]
    assert ("pixelcnn_np/losses.py", "bce_with_logits") in found
    assert ("gated.py", "shift_down_forward") in found
    assert ("x.py", "Checkpoint.params") in found
    assert not any(p.endswith("tour.py") for p, _ in found)          # "file.py: text" is no reference
    assert not any(n == "80" for _, n in found)


def test_broken_link_is_reported(tmp_path):
    """Negative control for links: a missing chapter and a missing image are reported;
    an existing file, a web address, an anchor and a link inside a code block are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "adam.md").write_text("# Adam\n")
    doc = tmp_path / "README.md"
    doc.write_text("[Adam](docs/adam.md) [gone](docs/no_such_chapter.md#x)\n"
                   "![fig](examples/figures/none.png) [web](https://example.org/a.md) [top](#top)\n"
                   "```\n[code](not/checked.md)\n```\n")
    broken = broken_links(doc, root=tmp_path)
    assert len(broken) == 2, broken
    assert "README.md:1: docs/no_such_chapter.md" in broken[0]
    assert "README.md:2: examples/figures/none.png" in broken[1]
