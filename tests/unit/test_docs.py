"""The documentation holds together: links resolve, the README stays a front door, generated pages match their inputs.

Why a test: docs drift silently. A renamed heading breaks every link to it, a
moved test leaves a guarantee pointing at nothing, and a hand-edited
performance page stops being what the benchmarks measured.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from mlbatch.specs import ModelSpec

REPO = Path(__file__).resolve().parents[2]
#: one page per audience (issue 24)
PAGES = [
    "architecture",
    "retraining",
    "scoring",
    "monitoring",
    "engines",
    "operations",
    "models",
    "guarantees",
    "security",
    "performance",
]
README_MAX_LINES = 250

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_TEST_REF = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+\*?))?")


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where a link is a link."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text())):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return anchors


def _links() -> list[tuple[Path, str]]:
    return [(md, target) for md in _markdown_files() for target in _LINK.findall(_prose(md.read_text()))]


@pytest.mark.parametrize(
    ("source", "target"), [(str(md.relative_to(REPO)), t) for md, t in _links() if "://" not in t and ":" not in t]
)
def test_every_relative_link_resolves_to_a_file_and_heading(source, target):
    path, _, anchor = target.partition("#")
    here = REPO / source
    resolved = (here.parent / path).resolve() if path else here
    assert resolved.exists(), f"{source}: link {target!r} points at {resolved}, which does not exist"
    if anchor:
        assert resolved.suffix == ".md", f"{source}: link {target!r} has an anchor into a file that is not markdown"
        assert anchor in _anchors(resolved), (
            f"{source}: link {target!r}: no heading with anchor #{anchor} in {resolved.relative_to(REPO)}; "
            f"anchors there: {sorted(_anchors(resolved))}"
        )


def test_the_docs_have_relative_links_to_check():
    # the link test is parametrised over what it finds: guard against it finding nothing after a regex change
    assert sum(1 for _, t in _links() if "://" not in t) >= 20


def test_readme_is_a_front_door_of_at_most_250_lines():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move reference material to docs/"


def test_readme_quotes_no_dates_commit_hashes_or_measurements():
    prose = _FENCE.sub("", (REPO / "README.md").read_text())
    assert not re.findall(r"\b20\d\d-\d\d-\d\d\b", prose), "dates belong in docs/performance.md or nowhere"
    hashes = [w for w in re.findall(r"\b[0-9a-f]{7,40}\b", prose) if re.search(r"\d", w) and re.search("[a-f]", w)]
    assert not hashes, f"commit hashes in README.md: {hashes}"
    assert not re.findall(r"rows/s|\d\s?(?:MB|GB|ms)\b|\d%", prose), "measured numbers belong in docs/performance.md"


def test_the_readme_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    first_block = _FENCE.search(text)
    assert first_block is not None and text.index(first_block.group(0)) < text.index("\n## ")
    block = first_block.group(0)
    assert ".venv/bin/pip install -c constraints.txt -e . && .venv/bin/mlbatch demo" in block
    assert "bash .ci/run" in block  # what CI runs, podman for the image's tests included
    ci = (REPO / ".ci" / "run").read_text()
    assert ".venv/bin/pip install -q -c constraints.txt -e '.[dev]'" in ci and ".venv/bin/python -m pytest" in ci


@pytest.mark.parametrize("page", PAGES)
def test_every_audience_page_exists_and_the_readme_links_it(page):
    assert (REPO / "docs" / f"{page}.md").is_file(), f"docs/{page}.md is missing"
    assert f"](docs/{page}.md" in (REPO / "README.md").read_text(), f"README.md does not link docs/{page}.md"


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


@pytest.mark.parametrize(
    "ref",
    sorted(
        {m.group(0) for md in _markdown_files() for m in _TEST_REF.finditer(md.read_text())},
    ),
)
def test_every_test_the_docs_name_exists(ref):
    path, _, name = ref.partition("::")
    assert (REPO / path).is_file(), f"the docs name {path}, which does not exist"
    if name:
        defined = _defined_tests(REPO / path)
        found = any(d.startswith(name[:-1]) for d in defined) if name.endswith("*") else name in defined
        assert found, f"the docs name {ref}, but {path} defines no such test"


def _spec_keys(model: type, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):  # a nested section
            keys += _spec_keys(sub, key + ".")
        else:
            keys.append(key)
    return keys


@pytest.mark.parametrize("key", _spec_keys(ModelSpec))
def test_every_spec_key_is_documented_in_the_model_authors_page(key):
    assert f"| `{key}` |" in (REPO / "docs" / "models.md").read_text(), f"docs/models.md has no row for `{key}`"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_performance_page_is_what_the_report_renders_from_its_committed_inputs(report):
    inputs = sorted((REPO / "docs" / "bench").glob("*.json"))
    assert {json.loads(p.read_text())["benchmark"] for p in inputs} == set(report.ORDER), (
        "docs/bench/ needs the --json of every benchmark"
    )
    rendered = report.render(inputs)
    assert (REPO / "docs" / "performance.md").read_text() == rendered, (
        "docs/performance.md differs from its inputs: run python bench/report.py docs/bench/*.json "
        "--out docs/performance.md"
    )


def test_the_report_does_not_depend_on_the_order_of_its_inputs(report):
    inputs = sorted((REPO / "docs" / "bench").glob("*.json"))
    assert report.render(inputs) == report.render(list(reversed(inputs)))


def test_the_report_names_a_file_that_is_not_a_benchmarks_json(report, tmp_path, capsys):
    stray = tmp_path / "notes.json"
    stray.write_text(json.dumps({"rows": 1}))
    assert report.main([str(stray)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "notes.json" in err[0] and "benchmark" in err[0]


def test_the_tuning_settings_are_documented_only_on_the_performance_page():
    knobs = ["MLBATCH_MAX_WORKERS", "MLBATCH_BATCH_WORKERS", "MLBATCH_PREDICT_THREADS", "MLBATCH_TASK_MIN_BYTES"]
    knobs += ["MLBATCH_ONNX_KERNEL", "ARROW_DEFAULT_MEMORY_POOL", "MLBATCH_TUNING__"]  # old spellings, and the new
    for md in _markdown_files():
        if md.name == "performance.md":
            continue
        named = [k for k in knobs if k in md.read_text()]
        assert not named, f"{md.relative_to(REPO)} documents {named}: tuning lives in docs/performance.md"
