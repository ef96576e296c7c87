"""Every combination's Dockerfile passes hadolint, its compose.yaml is valid
Compose that runs what the answers chose, stops gracefully and can scale, and
its Kubernetes manifests are valid objects that pass checkov. Its .github files
(workflows, dependabot.yml) pass zizmor and their schemas, checked once per
distinct set of files: this test's renders are reused for it.

No Docker daemon or cluster is needed: hadolint reads the Dockerfile, Docker
Compose's own `config` validates compose.yaml offline and prints the model it
would run, kubernetes-validate checks each object against Kubernetes' schemas.
The generated tests/runtime/test_container.py runs the image's commands
themselves; tests/runtime/test_kubernetes.py checks the manifests against the
project and KEDA's documented fields.
"""

import json
import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from combinations import COMBINATIONS, Combination
from helpers import BIN, check_github_files, render, run

# Both come as wheels in the dev group, next to this interpreter (BIN).
HADOLINT = shutil.which("hadolint", path=BIN) or "hadolint"
COMPOSE = shutil.which("docker-compose", path=BIN) or "docker-compose"
# Both in the dev group too (the generated CI runs the same two, by uvx).
KUBERNETES_VALIDATE = shutil.which("kubernetes-validate", path=BIN)
CHECKOV = shutil.which("checkov", path=BIN)
# The Kubernetes version the manifests are validated against, here and in the
# generated CI.
KUBERNETES_VERSION = "1.31.0"
# The manifests differ by the background answer (which objects, which trigger)
# and, in a few values, by the workload; the generated test_kubernetes.py
# checks those values in every render. The validators run once per background
# answer, on combinations that between them have each of the values.
K8S_CHECKED = (
    "mixed-ephemeral",
    "blocking_io-durable-redis",
    "cpu_bound-durable-rabbitmq",
)

# Settings naming files; each must live on the data volume in a container.
FILE_SETTINGS = re.compile(r"^    (\w+_path): str", re.MULTILINE)


def seconds(duration: str) -> float:
    """A Go duration as Compose prints it: `40s`, `1m10s`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"([\d.]+)(ms|h|m|s)", duration)
    assert parts, duration
    return sum(float(number) * units[unit] for number, unit in parts)


# The .github folders checked so far (in this process), by content: they differ
# by only some answers (durable work, the broker, the Python versions).
GITHUB_FILES_CHECKED: set[tuple[tuple[str, bytes], ...]] = set()


def check_github_files_once(project: Path) -> None:
    github = project / ".github"
    files = tuple(
        (str(path.relative_to(github)), path.read_bytes())
        for path in sorted(github.rglob("*"))
        if path.is_file()
    )
    if files not in GITHUB_FILES_CHECKED:
        check_github_files(github)
        GITHUB_FILES_CHECKED.add(files)


def check_type_check_wiring(project: Path) -> None:
    """mypy, strict, run by CI's lint job and by a pre-commit hook; the render
    test (tests/test_render.py) runs it on the project."""
    config = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    assert {"run": "uv run mypy"} in workflow["jobs"]["lint"]["steps"]
    hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    [mypy] = [h for repo in hooks["repos"] for h in repo["hooks"] if h["id"] == "mypy"]
    assert mypy["entry"] == "uv run mypy" and mypy["pass_filenames"] is False


def compose_model(project: Path) -> dict[str, Any]:
    """Compose's normalized model; `config` refuses an invalid file. A bare
    environment, so no WORKERS or API_PORT of this shell leaks in."""
    env = {"PATH": os.environ["PATH"], "HOME": str(project)}
    printed = run(COMPOSE, "config", "--format", "json", cwd=project, env=env)
    model: dict[str, Any] = json.loads(printed)
    return model


@pytest.mark.parametrize("combination", COMBINATIONS, ids=lambda c: c.id)
def test_container_files(combination: Combination, tmp_path: Path) -> None:
    project = render(tmp_path / "service", combination.answers)
    package = "my_service"
    check_github_files_once(project)
    check_type_check_wiring(project)

    # hadolint fails on any finding, warnings and style included.
    run(HADOLINT, "Dockerfile", cwd=project)
    dockerfile = (project / "Dockerfile").read_text()
    assert "ARG PYTHON_VERSION=3.11\n" in dockerfile
    assert f'CMD ["python", "-m", "{package}"]' in dockerfile
    assert "STOPSIGNAL SIGTERM" in dockerfile
    # The image's health check is liveness, answered off the event loop.
    assert re.search(r"HEALTHCHECK .*/live'", dockerfile.replace("\\\n", " "))
    for ignored in re.findall(r".*hadolint ignore.*", dockerfile):
        assert re.search(r"ignore=DL\d+\s+\S", ignored), f"no reason: {ignored}"

    services = compose_model(project)["services"]
    # `config` folds env_file into environment; the file as written keeps it.
    written = yaml.safe_load((project / "compose.yaml").read_text())["services"]
    durable = combination.task_durability == "durable"
    broker = combination.broker
    expected = {"api", "worker", broker, "postgres"} if durable else {"api"}
    assert set(services) == expected

    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name
    assert "/ready" in " ".join(services["api"]["healthcheck"]["test"])

    ours = ["api", "worker"] if durable else ["api"]
    settings = (project / "src" / package / "runtime" / "settings.py").read_text()
    file_settings = [name.upper() for name in FILE_SETTINGS.findall(settings)]
    # The examples' files: blocking calls' notes, ephemeral work's audit log.
    keeps_files = combination.examples and (
        not durable or combination.workload in ("blocking_io", "mixed")
    )
    assert bool(file_settings) == keeps_files
    for name in ours:
        service = services[name]
        assert service["build"]["context"] == str(project)
        assert seconds(service["stop_grace_period"]) > 30  # GRACEFUL_SHUTDOWN_S
        assert written[name]["env_file"] == [{"path": ".env", "required": False}]
        environment = service["environment"]
        assert environment["HOST"] == "0.0.0.0"
        # The image's health check and the Kubernetes probe ask this port.
        assert environment["LIVENESS_PORT"] == "8081"
        assert "LIVENESS_PORT=8081" in dockerfile
        for setting in file_settings:
            assert "/data/" in environment[setting], (name, setting)
        volume = [v for v in service["volumes"] if v["target"] == "/data"]
        assert volume and volume[0]["type"] == "volume", name
        if durable:
            # The broker service's name is its host on compose's network.
            assert re.match(rf"\w+://([^@/]*@)?{broker}:", environment["BROKER_URL"])
            assert set(service["depends_on"]) == {broker, "postgres"}
            # Jobs in PostgreSQL, which every API and worker container shares.
            database = environment["DATABASE_URL"]
            assert re.match(r"postgresql://[^@/]*@postgres:5432/", database)

    if combination.id in K8S_CHECKED:
        check_kubernetes(project)

    if durable:
        worker = services["worker"]
        assert worker["command"][:4] == ["celery", "-A", f"{package}.worker", "worker"]
        assert "container_name" not in worker and "ports" not in worker  # --scale
        assert worker["image"] == services["api"]["image"]
        assert "/health" not in " ".join(worker["healthcheck"]["test"])
        if broker == "redis":
            assert services["redis"]["command"][-2:] == ["--appendonly", "yes"]
        else:
            assert services["rabbitmq"]["image"].startswith("rabbitmq:")


def test_python_version_answer_is_the_image_default(tmp_path: Path) -> None:
    answers = {"workload": "async_io", "python_version": "3.13"}
    project = render(tmp_path / "service", answers)
    assert "ARG PYTHON_VERSION=3.13\n" in (project / "Dockerfile").read_text()
    assert "FROM python:${PYTHON_VERSION}-slim" in (project / "Dockerfile").read_text()


def check_kubernetes(project: Path) -> None:
    """Every core object of deploy/kubernetes valid for Kubernetes, strictly
    (an unknown field fails); checkov with no failed check."""
    manifests = project / "deploy" / "kubernetes"
    core = [
        str(path)
        for path in sorted(manifests.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        and not yaml.safe_load(path.read_text())["apiVersion"].startswith("keda.sh/")
    ]
    assert len(core) >= 6, core
    assert KUBERNETES_VALIDATE and CHECKOV, "uv sync: both are in the dev group"
    printed = run(
        KUBERNETES_VALIDATE, "--strict", "-k", KUBERNETES_VERSION, *core, cwd=project
    )
    # A kind it has no schema for (a misspelt apiVersion) is only a warning.
    assert printed.count(" passed for resource ") == len(core), printed
    assert "WARN" not in printed, printed
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert f"--kubernetes-version {KUBERNETES_VERSION} " in workflow
    printed = run(
        CHECKOV,
        *("--directory", str(manifests), "--framework", "kubernetes"),
        *("--compact", "--quiet", "--skip-download"),
        cwd=project,
    )
    assert "Failed checks: 0," in printed, printed
    # Skipped only with a reason, in the object's own annotations.
    for path in manifests.glob("*.yaml"):
        for skip in re.findall(r"checkov\.io/skip\d+: (.*)", path.read_text()):
            assert re.fullmatch(r"CKV\w+=\S.{20,}", skip), (path.name, skip)


def test_kubernetes_checked_combinations_exist() -> None:
    """A renamed combination would leave the manifests unchecked."""
    assert set(K8S_CHECKED) <= {c.id for c in COMBINATIONS}
