"""Helpers for the template's tests: render with Copier, run commands."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import copier
import pytest

REPO = Path(__file__).resolve().parent.parent


def render(
    dst: Path,
    answers: dict[str, str],
    src: Path = REPO,
    quiet: bool = True,
    vcs_ref: str = "HEAD",
) -> Path:
    """Render `src` at `vcs_ref` without trust (HEAD: with uncommitted changes)."""
    copier.run_copy(
        str(src),
        dst,
        data=answers,
        defaults=True,
        unsafe=False,
        quiet=quiet,
        vcs_ref=vcs_ref,
    )
    return dst


def attempt(
    *command: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `command` and return what it did, output captured, whatever its exit."""
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run `command`; on failure, fail the test with everything it printed."""
    result = attempt(*command, cwd=cwd, env=env)
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` exited {result.returncode} in {cwd}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout


UV = os.environ.get("UV", "uv")  # `uv run` names its own binary in $UV
# CI's Python dimension: generated projects run on this Python (tests/combinations.py
# puts it in their python_version answer). Unset: uv's own choice, 3.11 here.
PYTHON = os.environ.get("LOOPSAFE_PYTHON")


# One mypy cache per pytest worker, shared by every generated project that
# worker checks: the types of their libraries (FastAPI, pydantic, SQLAlchemy,
# Celery, ...) are read once, not once per render. mypy checks a cached module
# against its file's hash, so projects that differ share it soundly one at a
# time; but runs at once, in two workers, could pair one project's cached
# metadata with another's data (a durable render's runtime/metrics.py taken for
# an ephemeral one's), so each worker has its own.
MYPY_CACHE = (
    Path(tempfile.gettempdir())
    / f"loopsafe-mypy-cache-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
)


def project_env() -> dict[str, str]:
    """The environment for a generated project's commands: its venv, not ours."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["MYPY_CACHE_DIR"] = str(MYPY_CACHE)  # `uv run mypy` and its pre-commit hook
    env["REQUIRE_BROKER"] = "1"  # a missing broker fails its tests, never skips them
    env["CI"] = "true"  # and so does a missing promtool
    return env


def uv(*args: str, cwd: Path) -> str:
    """Run uv in a generated project; fail the test if it fails."""
    if PYTHON:  # `uv sync --python 3.12 ...`, `uv run --python 3.12 ...`
        args = (args[0], "--python", PYTHON, *args[1:])
    return run(UV, *args, cwd=cwd, env=project_env())


# Wheels of the dev group, next to this interpreter.
BIN = Path(sys.executable).parent
# Nothing at medium severity or above; a file it cannot parse fails too.
ZIZMOR = (
    shutil.which("zizmor", path=BIN) or "zizmor",
    *("--offline", "--strict-collection", "--min-severity", "medium"),
)
CHECK_JSONSCHEMA = shutil.which("check-jsonschema", path=BIN) or "check-jsonschema"


def check_github_files(github: Path) -> None:
    """A `.github` folder: zizmor finds nothing at medium severity or above in
    its workflows and dependabot.yml, and each is valid against its published
    schema (SchemaStore's, shipped with check-jsonschema: no download)."""
    github = github.resolve()
    run(*ZIZMOR, str(github), cwd=github)
    workflows = sorted(map(str, (github / "workflows").glob("*.yml")))
    assert workflows, f"no workflow in {github}"
    schema = ("--builtin-schema", "vendor.github-workflows")
    run(CHECK_JSONSCHEMA, *schema, *workflows, cwd=github)
    schema = ("--builtin-schema", "vendor.dependabot")
    run(CHECK_JSONSCHEMA, *schema, str(github / "dependabot.yml"), cwd=github)
