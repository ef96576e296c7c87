"""Every supported combination renders without trust, lints clean and passes its
tests, with the edits users make first (tests/user_edits.py): tests/test_update.py
checks that an update from the previous release gives this same project."""

import json
import re
from pathlib import Path

import pytest
from combinations import COMBINATIONS, DATABASES, Combination
from helpers import render, run, uv
from user_edits import make_user_edits

# Jinja left in a rendered file. `${{` is GitHub Actions' own syntax, not Jinja's.
LEFTOVER_JINJA = re.compile(r"(?<!\$)\{\{|\{%|\{#|%\}|#\}")


def rendered_files(project: Path) -> list[Path]:
    skip = {".venv", ".git", ".pytest_cache", ".ruff_cache", "__pycache__"}
    return [
        path
        for path in project.rglob("*")
        if path.is_file() and not skip.intersection(path.relative_to(project).parts)
    ]


@pytest.mark.parametrize("combination", COMBINATIONS, ids=lambda c: c.id)
def test_combination(combination: Combination, tmp_path: Path) -> None:
    project = render(tmp_path / "service", combination.answers)
    package = project / "src" / "my_service"
    settings = (package / "runtime" / "settings.py").read_text()
    assert f"shed_load: bool = {combination.shed_load}" in settings
    assert (package / "examples").exists() == combination.examples
    assert (project / "tests" / "examples").exists() == combination.examples
    assert (package / "tasks.py").exists() == combination.durable
    telemetry = package / "runtime" / "telemetry.py"
    assert telemetry.exists() == combination.opentelemetry
    assert_tests_exist(project, combination.skipped_tests)
    check_rendered(project)
    # A route, a module and its test, a README section, a `.env`, `uv add`:
    # the suite below runs the user's test too.
    make_user_edits(project)
    check_suite(project, combination.suite_options)


def assert_tests_exist(project: Path, node_ids: tuple[str, ...]) -> None:
    """Each node id names a test there: `--deselect` ignores one that does not."""
    for node_id in node_ids:
        path, _, test = node_id.partition("::")
        assert (project / path).exists(), node_id
        function, _, database = test.partition("[")
        assert not function or f"def {function}(" in (project / path).read_text()
        if database:
            testing = project / "src" / "my_service" / "runtime" / "testing"
            fixtures = (testing / "backing_services.py").read_text()
            assert f"params={json.dumps(list(DATABASES))}" in fixtures


def check_rendered(project: Path) -> None:
    """No Jinja left, no .jinja file, valid workflows."""
    files = rendered_files(project)
    assert not [f for f in files if f.suffix == ".jinja"], "unrendered .jinja file"
    leftovers = [
        f"{f.relative_to(project)}: {match.group()}"
        for f in files
        for match in [LEFTOVER_JINJA.search(f.read_text())]
        if match
    ]
    assert not leftovers, f"leftover Jinja: {leftovers}"

    workflows = (project / ".github" / "workflows").glob("*.yml")
    run("actionlint", *sorted(map(str, workflows)), cwd=project)


def check_suite(project: Path, options: tuple[str, ...] = ()) -> None:
    """Lint-clean, formatted, strictly typed, and its own tests pass (`options`:
    pytest's)."""
    uv("sync", "--quiet", cwd=project)
    uv("run", "ruff", "check", ".", cwd=project)
    uv("run", "ruff", "format", "--check", "--diff", ".", cwd=project)
    uv("run", "mypy", cwd=project)  # strict, as its pyproject.toml says
    uv("run", "pytest", "-q", "-p", "no:cacheprovider", *options, cwd=project)
