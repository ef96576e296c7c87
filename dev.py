#!/usr/bin/env python3
"""loopsafe's entry points, needing nothing but Python 3.11+.

    python3 dev.py new ../my-service [copier options]   scaffold a service and run it
    python3 dev.py test [pytest options]                 run the whole test suite
    python3 dev.py test --shard NAME [--shard NAME2] [pytest options]
                                                         run one part of it (CI's jobs)
    python3 dev.py shards [--github]                     list the shards

The shards split the suite so that every test is in exactly one of them
(tests/test_workflows.py checks it):

    questions        lint the template's own code; tests/test_questions.py,
                     tests/test_workflows.py and tests/test_container.py (no
                     service needed)
    render:<id>      tests/test_render.py::test_combination[<id>], one per entry of
                     tests/combinations.py; durable ones need the services, all
                     need promtool
    update           tests/test_update.py (needs the services)
    bench            tests/test_bench.py, the benchmarks' smoke run (needs the services)

"The services" are Redis, RabbitMQ and PostgreSQL on 127.0.0.1; `test` starts
the ones its shards need (scripts/ensure-services.sh) and nothing else, and
installs the tools they run (wrk, promtool) where missing.
LOOPSAFE_PYTHON=3.12 renders the projects for that Python (default 3.11).

uv is used if it is on PATH; otherwise it is installed into .bootstrap/ first.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent
BOOTSTRAP = REPO / ".bootstrap"
ENSURE_SERVICES = REPO / "scripts" / "ensure-services.sh"
SERVICES = ("redis", "rabbitmq", "postgres")
# The tests mostly wait (for servers, Celery workers, brokers, uv), so twice as
# many pytest workers as cores keep the cores busy; tests/conftest.py starts
# the longest first.
PYTEST_WORKERS = 2 * (os.cpu_count() or 1)

sys.path.insert(0, str(REPO / "tests"))
from combinations import (  # noqa: E402  (stdlib only: safe before uv sync)
    DEFAULT_PYTHON,
    ENTRIES,
    EVERY_PYTHON,
    PYTHON_VERSIONS,
)


class Shard(NamedTuple):
    name: str
    pytest_args: tuple[str, ...]  # test files or node ids, as pytest takes them
    services: tuple[str, ...] = ()  # what its tests talk to
    tools: tuple[str, ...] = ()  # Debian packages it runs (scripts/ensure-services.sh)
    lint: bool = False  # ruff and mypy over the template's own code first
    pythons: tuple[str, ...] = (DEFAULT_PYTHON,)  # CI runs it once on each


def shards() -> list[Shard]:
    """The whole suite, in parts. No test is in two parts, none is in no part."""
    return [
        Shard(
            "questions",
            (
                "tests/test_questions.py",
                "tests/test_workflows.py",
                "tests/test_container.py",
            ),
            lint=True,
        ),
        *(
            Shard(
                f"render:{entry.id}",
                (f"tests/test_render.py::test_combination[{entry.id}]",),
                SERVICES if entry.durable else (),
                # The generated suite lints its /metrics with Prometheus' promtool.
                tools=("promtool",),
                pythons=PYTHON_VERSIONS
                if entry.id in EVERY_PYTHON
                else (DEFAULT_PYTHON,),
            )
            for entry in ENTRIES
        ),
        Shard("update", ("tests/test_update.py",), SERVICES),
        Shard("bench", ("tests/test_bench.py",), SERVICES, tools=("wrk",)),
    ]


def github_matrices() -> dict[str, dict[str, list[dict[str, str]]]]:
    """CI's two test jobs' matrices: shards needing no service, and the rest."""
    jobs: dict[str, list[dict[str, str]]] = {
        "without-services": [],
        "with-services": [],
    }
    for shard in shards():
        job = "with-services" if shard.services else "without-services"
        for python in shard.pythons:
            jobs[job].append({"shard": shard.name, "python": python})
    return {job: {"include": include} for job, include in jobs.items()}


def find_uv() -> str:
    """uv from PATH, or from a private virtualenv that pip fills on first use."""
    found = shutil.which("uv")
    if found:
        return found
    local_uv = BOOTSTRAP / "bin" / "uv"
    if not local_uv.exists():
        print("dev.py: installing uv into .bootstrap/", file=sys.stderr)
        venv.create(BOOTSTRAP, with_pip=True)
        pip = [str(BOOTSTRAP / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "uv"], check=True)
    # Generated projects call plain `uv` too (their pre-commit hooks do).
    os.environ["PATH"] = f"{local_uv.parent}{os.pathsep}{os.environ['PATH']}"
    return str(local_uv)


def sh(*command: str, cwd: Path = REPO) -> None:
    subprocess.run(command, cwd=cwd, check=True)


def answers_of(project: Path) -> dict[str, str]:
    """The flat `key: value` lines of .copier-answers.yml (no YAML library needed)."""
    answers = {}
    for line in (project / ".copier-answers.yml").read_text().splitlines():
        key, sep, value = line.partition(": ")
        if sep and not line.startswith("#"):
            answers[key] = value.strip("'\"")
    return answers


def new(args: list[str]) -> int:
    if not args or args[0].startswith("-"):
        print("usage: python3 dev.py new DESTINATION [copier options]", file=sys.stderr)
        return 2
    destination, copier_options = Path(args[0]).resolve(), args[1:]
    if not sys.stdin.isatty() and "--defaults" not in copier_options:
        copier_options.append("--defaults")  # nobody to answer: take the defaults
    uv = find_uv()
    sh(uv, "sync", "--quiet")
    sh(
        uv,
        "run",
        "copier",
        "copy",
        "--vcs-ref",
        "HEAD",
        *copier_options,
        str(REPO),
        str(destination),
    )
    answers = answers_of(destination)
    package = answers["package_name"]
    sh(uv, "sync", "--quiet", cwd=destination)
    worker = None
    if answers.get("task_durability") == "durable":
        sh("bash", str(ENSURE_SERVICES), answers["broker"])
        worker = subprocess.Popen(
            [uv, "run", "celery", "-A", f"{package}.worker", "worker"],
            cwd=destination,
            start_new_session=True,
        )
    print(f"dev.py: serving {package} on http://127.0.0.1:8000 (Ctrl-C stops)")
    try:
        return subprocess.run(
            [uv, "run", "python", "-m", package], cwd=destination, check=False
        ).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait()


def split_shards(args: list[str]) -> tuple[list[str], list[str]]:
    """`--shard NAME` / `--shard=NAME` options out of `args`; the rest is pytest's."""
    names, rest = [], []
    arguments = iter(args)
    for arg in arguments:
        if arg == "--shard":
            names.append(next(arguments, ""))
        elif arg.startswith("--shard="):
            names.append(arg.removeprefix("--shard="))
        else:
            rest.append(arg)
    return names, rest


def test(args: list[str]) -> int:
    """Lint and run every test, or the shards named; the services they need up first."""
    names, pytest_options = split_shards(args)
    by_name = {shard.name: shard for shard in shards()}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        print(f"dev.py: no shard {', '.join(map(repr, unknown))}", file=sys.stderr)
        print("dev.py: the shards are:", *by_name, sep="\n  ", file=sys.stderr)
        return 2
    selected = [by_name[name] for name in names] or list(by_name.values())
    services = [s for s in SERVICES if any(s in shard.services for shard in selected)]
    services += sorted({tool for shard in selected for tool in shard.tools})
    # No shard named: no selection, so pytest runs its testpaths, shards or not.
    selection = [a for shard in selected for a in shard.pytest_args] if names else []

    # The suite starts hundreds of Python processes from a few dozen virtualenvs
    # (servers, Celery workers, generated test runs): with bytecode caching, each
    # start after a venv's first reads .pyc files instead of compiling ~5,000
    # modules (0.95 s of CPU instead of 2.3 s to import a durable service). Some
    # machines turn it off for everything; the suite's processes turn it back on.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    uv = find_uv()
    if services:
        sh("bash", str(ENSURE_SERVICES), *services)
    sh(uv, "sync", "--quiet")
    if any(shard.lint for shard in selected):
        sh(uv, "run", "ruff", "check", ".")
        sh(uv, "run", "ruff", "format", "--check", ".")
        sh(uv, "run", "mypy")  # strict: pyproject.toml's [tool.mypy]
    # One test handed out at a time (xdist's default hands each worker a run of
    # consecutive tests first: the longest ones, all to the first worker).
    workers = ["-n", str(PYTEST_WORKERS), "--maxschedchunk", "1"]
    # The slowest tests' times close the log: where the suite's minutes go.
    durations = ["--durations", "25"]
    pytest = [uv, "run", "pytest", *workers, *durations, *pytest_options, *selection]
    return subprocess.run(pytest, cwd=REPO, check=False).returncode


def list_shards(args: list[str]) -> int:
    """Print the shards; with --github, as CI's shards job writes its outputs."""
    if args == ["--github"]:
        for job, matrix in github_matrices().items():
            print(f"{job}={json.dumps(matrix)}")
        return 0
    if args:
        print("usage: python3 dev.py shards [--github]", file=sys.stderr)
        return 2
    for shard in shards():
        needs = ", ".join(shard.services) or "no service"
        print(f"{shard.name:46} {needs:26} Python {', '.join(shard.pythons)}")
    return 0


def main() -> int:
    commands = {"new": new, "test": test, "shards": list_shards}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as error:
        return error.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
