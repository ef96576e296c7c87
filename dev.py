#!/usr/bin/env python3
"""loopsafe's two entry points, needing nothing but Python 3.11+.

    python3 dev.py new ../my-service [copier options]   scaffold a service and run it
    python3 dev.py test [pytest options]                 run the whole test suite

uv is used if it is on PATH; otherwise it is installed into .bootstrap/ first.
"""

import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent
BOOTSTRAP = REPO / ".bootstrap"


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
    if not sys.stdin.isatty():
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
        sh("bash", str(REPO / "scripts" / "ensure-services.sh"), answers["broker"])
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


def test(args: list[str]) -> int:
    """Lint the template's own code, then run every test, the services up first."""
    uv = find_uv()
    sh("bash", str(REPO / "scripts" / "ensure-services.sh"))
    sh(uv, "sync", "--quiet")
    sh(uv, "run", "ruff", "check", ".")
    sh(uv, "run", "ruff", "format", "--check", ".")
    pytest = [uv, "run", "pytest", "-n", "auto", *args]
    return subprocess.run(pytest, cwd=REPO, check=False).returncode


def main() -> int:
    commands = {"new": new, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as error:
        return error.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
