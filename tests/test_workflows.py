"""The template's CI: valid, one entry point, the whole suite, services declared.

The workflow is read, not trusted: its matrix jobs' steps are run here as GitHub
would (with $GITHUB_OUTPUT), their matrices expanded, and every command that runs
tests (`dev.py test ...` or a bare `pytest ...`) is mapped to the tests it would
select from this suite's collected node ids. From those node ids come the shards
(dev.py) and so the services each job needs.
"""

import importlib.util
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from combinations import (
    CHAOS_TEST,
    CHAOS_TESTED,
    CRASH_TEST,
    CRASH_TESTED,
    DATABASES,
    DEFAULT_PYTHON,
    DURABLE_TESTS,
    ENTRIES,
    EVERY_PYTHON,
    PARALLEL_TESTED,
    PYTHON_VERSIONS,
    REGISTRY_TEST,
    SHARED_TESTS,
    TAKEOVER_TEST,
    WORKLOADS,
    Combination,
)
from helpers import REPO, ZIZMOR, attempt, check_github_files, run

WORKFLOW = REPO / ".github" / "workflows" / "template.yml"

# How a job declares each service: the image, and the port published on the host.
SERVICE_IMAGES = {
    "redis": "redis:7",
    "rabbitmq": "rabbitmq:3",
    "postgres": "postgres:17",
}
SERVICE_PORTS = {"redis": 6379, "rabbitmq": 5672, "postgres": 5432}
POSTGRES_ENV = {"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_DB": "test"}


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev", REPO / "dev.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dev = load_dev()


@pytest.fixture(scope="module")
def suite() -> list[str]:
    """Every test's node id, as pytest collects the whole suite."""
    out = run(
        sys.executable,
        *("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"),
        cwd=REPO,
    )
    ids = [line for line in out.splitlines() if "::" in line]
    assert ids, out
    return ids


# --- pytest's command line, the part CI uses -----------------------------------

OPTIONS_WITH_VALUE = {"-n", "--numprocesses", "--dist", "-p", "--timeout", "-o"}
SELECTING_OPTIONS = {"-k", "-m", "--deselect", "--lf", "--ff", "--sw"}


def selected(node_ids: list[str], args: list[str]) -> list[str]:
    """The node ids `pytest ARGS` runs out of the whole suite."""
    paths: list[str] = []
    ignored: list[str] = []
    arguments = iter(args)
    for arg in arguments:
        option = arg.split("=", 1)[0]
        if option in SELECTING_OPTIONS:
            raise AssertionError(f"cannot tell which tests `{arg}` selects")
        if option in ("--ignore", "--ignore-glob"):
            ignored.append(arg.split("=", 1)[1] if "=" in arg else next(arguments))
        elif option in OPTIONS_WITH_VALUE:
            if "=" not in arg:
                next(arguments, None)
        elif not arg.startswith("-"):
            paths.append(arg)
        # Any other option (-q, -x, -ra, ...) selects nothing.
    paths = paths or ["tests"]  # pyproject.toml's testpaths
    return [
        node
        for node in node_ids
        if any(within(node, path) for path in paths)
        and not any(within(node, path) for path in ignored)
    ]


def within(node_id: str, path: str) -> bool:
    path = path.rstrip("/")
    return node_id == path or any(node_id.startswith(path + c) for c in "/:[")


# --- the workflow, as GitHub would run it ----------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(text: str, context: dict[str, Any]) -> str:
    """Substitute the `${{ a.b.c }}` expressions `context` knows; leave the rest."""

    def value(match: re.Match[str]) -> str:
        found: Any = context
        for key in match.group(1).split("."):
            if not isinstance(found, dict) or key not in found:
                return match.group()
            found = found[key]
        return str(found)

    return EXPRESSION.sub(value, str(text))


VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(script: str, env: dict[str, str]) -> str:
    """Substitute the shell's `$NAME` and `${NAME}` that `env` sets; leave the rest."""

    def value(match: re.Match[str]) -> str:
        return env.get(match.group(1) or match.group(2), match.group())

    return VARIABLE.sub(value, script)


def job_outputs(workflow: dict[str, Any], name: str) -> dict[str, str]:
    """Run job `name`'s steps here, as GitHub would, and resolve its outputs."""
    steps: dict[str, dict[str, dict[str, str]]] = {}
    for step in workflow["jobs"][name].get("steps", []):
        if "run" not in step or "id" not in step:
            continue  # only steps with an id can produce outputs
        output = Path(os.environ.get("TMPDIR", "/tmp")) / f"github-output-{os.getpid()}"
        output.write_text("")
        env = {**os.environ, "GITHUB_OUTPUT": str(output)}
        subprocess.run(["bash", "-ec", step["run"]], cwd=REPO, env=env, check=True)
        lines = output.read_text().splitlines()
        output.unlink()
        steps[step["id"]] = {"outputs": dict(line.split("=", 1) for line in lines)}
    declared = workflow["jobs"][name].get("outputs", {})
    return {key: evaluate(text, {"steps": steps}) for key, text in declared.items()}


def matrix_entries(workflow: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The matrix entries job `name` runs once each ([{}] without a matrix)."""
    matrix = workflow["jobs"][name].get("strategy", {}).get("matrix")
    if matrix is None:
        return [{}]
    if isinstance(matrix, str):
        from_json = re.fullmatch(
            r"\$\{\{\s*fromJSON\(needs\.([\w-]+)\.outputs\.([\w-]+)\)\s*\}\}", matrix
        )
        assert from_json, f"job {name}: cannot expand the matrix {matrix!r}"
        needed, key = from_json.groups()
        matrix = json.loads(job_outputs(workflow, needed)[key])
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    entries: list[dict[str, Any]] = [
        dict(zip(axes, values, strict=True))
        for values in itertools.product(*axes.values())
    ]
    if not axes:
        entries = []
    for extra in matrix.get("include", []):
        entries.append(extra)  # no axis here is ever extended by an include
    return entries or [{}]


def commands(script: str) -> list[list[str]]:
    """The simple commands of a `run:` script (split on newlines, &&, ||, ;, |)."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        words: list[str] = []
        for token in [*tokens, ";"]:
            if token in ("&&", "||", ";", "|", "&"):
                if words:
                    found.append(words)
                words = []
            else:
                words.append(token)
    return found


def runs_tests(words: list[str]) -> tuple[str, list[str]] | None:
    """("dev.py", its args) or ("pytest", its args) if `words` runs tests."""
    for i, word in enumerate(words):
        if word.endswith("dev.py") and words[i + 1 : i + 2] == ["test"]:
            return "dev.py", words[i + 2 :]
        if word == "pytest" or word.endswith("/pytest"):
            return "pytest", words[i + 1 :]
        if word == "-m" and words[i + 1 : i + 2] == ["pytest"]:
            return "pytest", words[i + 2 :]
    return None


def dev_selection(args: list[str]) -> tuple[list[str], list[str]]:
    """`dev.py test ARGS`: the shards it names (all if none) and pytest's arguments."""
    names, pytest_options = dev.split_shards(args)
    shards = {shard.name: shard for shard in dev.shards()}
    unknown = [name for name in names if name not in shards]
    assert not unknown, f"dev.py has no shard {unknown}"
    selection = [arg for name in names for arg in shards[name].pytest_args]
    return names or list(shards), [*pytest_options, *selection]


class Run:
    """One job of the workflow, for one matrix entry, and the tests it runs."""

    def __init__(self, job: str, entry: dict[str, Any], spec: dict[str, Any]) -> None:
        self.job, self.entry, self.spec = job, entry, spec
        self.label = f"{job} {json.dumps(entry)}" if entry else job
        self.invocations: list[tuple[str, list[str], dict[str, str]]] = []

    @property
    def services(self) -> dict[str, Any]:
        return self.spec.get("services") or {}


def runs(workflow: dict[str, Any]) -> list[Run]:
    """Every (job, matrix entry) of the workflow and the test commands it runs."""
    found = []
    for name, spec in workflow["jobs"].items():
        for entry in matrix_entries(workflow, name):
            job_run = Run(name, entry, spec)
            context = {"matrix": entry}
            for step in spec.get("steps", []):
                if "run" not in step:
                    continue
                env = {**workflow.get("env", {}), **spec.get("env", {})}
                env = {**env, **step.get("env", {})}
                env = {k: evaluate(v, context) for k, v in env.items()}
                # Values reach scripts through env (never `${{ }}` inside `run:`).
                script = expand(evaluate(step["run"], context), env)
                for words in commands(script):
                    invocation = runs_tests(words)
                    if invocation:
                        job_run.invocations.append((*invocation, env))
            if job_run.invocations:
                found.append(job_run)
    return found


def selected_by(kind: str, args: list[str], suite: list[str]) -> list[str]:
    if kind == "dev.py":
        return selected(suite, dev_selection(args)[1])
    return selected(suite, args)


def shard_of(suite: list[str]) -> dict[str, Any]:
    """Each node id's shard (the partition test checks there is exactly one)."""
    owner: dict[str, Any] = {}
    for shard in dev.shards():
        for node in selected(suite, list(shard.pytest_args)):
            owner.setdefault(node, shard)
    return owner


# --- the tests ---------------------------------------------------------------------


def workflow_of(path: Path = WORKFLOW) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text())
    return workflow


def test_template_workflows_pass_actionlint() -> None:
    workflows = sorted(map(str, (REPO / ".github" / "workflows").glob("*.yml")))
    assert workflows
    run("actionlint", *workflows, cwd=REPO)


def test_template_github_files_pass_zizmor_and_their_schemas() -> None:
    """The generated projects' .github files: tests/test_container.py."""
    check_github_files(REPO / ".github")


def test_the_zizmor_check_catches_an_unpinned_action(tmp_path: Path) -> None:
    github = tmp_path / ".github"
    shutil.copytree(REPO / ".github", github)
    workflow = github / "workflows" / "template.yml"
    text = workflow.read_text()
    workflow.write_text(re.sub(r"actions/checkout@\S+", "actions/checkout@v5", text))
    result = attempt(*ZIZMOR, str(github), cwd=tmp_path)
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout


USES = re.compile(r"^\s*(?:- )?uses:\s*(.*?)\s*$", re.MULTILINE)
PINNED = re.compile(r"([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)")


def test_actions_are_pinned_to_one_release_everywhere() -> None:
    """Every action, here and in the generated workflows, is pinned to a commit
    with its release in a comment, and to the same one in every file: Dependabot
    moves this repository's pins and template-update.yml's, not ci.yml.jinja's."""
    files = [
        *(REPO / ".github" / "workflows").glob("*.yml"),
        *(REPO / "template" / ".github" / "workflows").iterdir(),
    ]
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in files:
        for uses in USES.findall(path.read_text()):
            pinned = PINNED.fullmatch(uses)
            assert pinned, f"{path.name}: `{uses}`, not `owner/repo@<sha> # vX.Y.Z`"
            action, sha, version = pinned.groups()
            pins.setdefault(action, set()).add((sha, version))
    assert {"actions/checkout", "astral-sh/setup-uv"} <= set(pins)
    differing = {action: found for action, found in pins.items() if len(found) > 1}
    assert not differing, f"pinned to more than one commit: {differing}"


def test_shards_partition_the_suite(suite: list[str]) -> None:
    """Every test is in exactly one shard; no shard is empty."""
    membership: Counter[str] = Counter()
    for shard in dev.shards():
        tests = selected(suite, list(shard.pytest_args))
        assert tests, f"shard {shard.name} selects no test"
        membership.update(tests)
    assert not [n for n in suite if membership[n] == 0], "tests in no shard"
    assert not [n for n, count in membership.items() if count > 1], "tests in 2 shards"
    assert set(membership) == set(suite)


def test_render_shards_are_the_combination_list() -> None:
    render = [s.name for s in dev.shards() if s.name.startswith("render:")]
    assert render == [f"render:{entry.id}" for entry in ENTRIES]


def test_shard_services_follow_what_their_tests_touch() -> None:
    """Update tests, durable renders and the bench smoke run need every service."""
    durable = {f"render:{entry.id}" for entry in ENTRIES if entry.durable}
    for shard in dev.shards():
        needs_all = shard.name in {"update", "bench"} | durable
        assert set(shard.services) == (set(SERVICE_IMAGES) if needs_all else set())


def test_shard_tools_follow_what_their_tests_run() -> None:
    """Every generated suite lints its /metrics with promtool; the bench smoke run
    drives wrk. scripts/ensure-services.sh installs each by name."""
    script = (REPO / "scripts" / "ensure-services.sh").read_text()
    for shard in dev.shards():
        expected = {"wrk"} if shard.name == "bench" else set()
        if shard.name.startswith("render:"):
            expected = {"promtool"}
        assert set(shard.tools) == expected, shard.name
        for tool in shard.tools:
            assert f"ensure_{tool}() {{" in script, tool


def test_ci_run_runs_the_whole_suite(suite: list[str]) -> None:
    """`.ci/run` is `python3 dev.py test`: every shard, every test."""
    invocations = [
        found
        for words in commands((REPO / ".ci" / "run").read_text())
        if (found := runs_tests(words))
    ]
    assert len(invocations) == 1
    kind, args = invocations[0]
    assert kind == "dev.py"
    assert dev_selection(args)[0] == [shard.name for shard in dev.shards()]
    assert selected_by(kind, args, suite) == suite


def test_jobs_run_tests_only_through_dev_py() -> None:
    """One entry point: what CI runs is what `.ci/run` runs, shard by shard."""
    bare = [
        f"{job_run.label}: pytest {shlex.join(args)}"
        for job_run in runs(workflow_of())
        for kind, args, _ in job_run.invocations
        if kind != "dev.py"
    ]
    assert not bare, "jobs calling pytest directly:\n" + "\n".join(bare)


def test_workflow_runs_every_shard_once_per_python() -> None:
    ran: Counter[tuple[str, str]] = Counter()
    for job_run in runs(workflow_of()):
        for kind, args, env in job_run.invocations:
            if kind == "dev.py":
                python = env.get("LOOPSAFE_PYTHON") or DEFAULT_PYTHON
                ran.update((name, python) for name in dev_selection(args)[0])
    planned = Counter(
        (shard.name, python) for shard in dev.shards() for python in shard.pythons
    )
    assert ran == planned
    for python in PYTHON_VERSIONS:  # every Python renders every workload
        rendered = {name for name, py in ran if py == python and ":" in name}
        for workload in WORKLOADS:
            assert any(name.startswith(f"render:{workload}-") for name in rendered)


def service_problems(workflow: dict[str, Any], suite: list[str]) -> list[str]:
    owner = shard_of(suite)
    problems = []
    for job_run in runs(workflow):
        needs: dict[str, set[str]] = {}
        for kind, args, _ in job_run.invocations:
            for node in selected_by(kind, args, suite):
                for service in owner[node].services:
                    needs.setdefault(service, set()).add(owner[node].name)
        declared = {
            service: spec
            for spec in job_run.services.values()
            for service, image in SERVICE_IMAGES.items()
            if evaluate(spec.get("image", ""), {"matrix": job_run.entry}) == image
        }
        for service, shards in sorted(needs.items()):
            why = f"{job_run.label} runs {', '.join(sorted(shards))}"
            spec = declared.get(service)
            if spec is None:
                problems.append(f"{why}: no {SERVICE_IMAGES[service]} service")
                continue
            port = SERVICE_PORTS[service]
            if f"{port}:{port}" not in map(str, spec.get("ports", [])):
                problems.append(f"{why}: {service} does not publish {port}:{port}")
            if "--health-cmd" not in spec.get("options", ""):
                problems.append(f"{why}: {service} has no health check")
            if service == "postgres" and spec.get("env", {}) != POSTGRES_ENV:
                problems.append(f"{why}: postgres env is not {POSTGRES_ENV}")
    return problems


def test_jobs_declare_the_services_their_tests_need(suite: list[str]) -> None:
    problems = service_problems(workflow_of(), suite)
    assert not problems, "\n".join(problems)


def test_the_service_check_catches_a_missing_service(suite: list[str]) -> None:
    workflow = workflow_of()
    for spec in workflow["jobs"].values():
        spec.get("services", {}).pop("postgres", None)
    problems = service_problems(workflow, suite)
    assert any("update" in p and "postgres:17" in p for p in problems)
    assert any("render:cpu_bound-durable-rabbitmq" in p for p in problems)


def test_combination_list() -> None:
    ids = [entry.id for entry in ENTRIES]
    assert len(ids) == len(set(ids))
    background = [("ephemeral", None), ("durable", "redis"), ("durable", "rabbitmq")]
    every = {(w, d, b) for w in WORKLOADS for d, b in background}
    defaults = [entry for entry in ENTRIES if entry.shed_load and entry.examples]
    assert every <= {entry[:3] for entry in defaults}
    assert "mixed-ephemeral-no-shedding" in ids
    no_examples = [entry.workload for entry in ENTRIES if not entry.examples]
    assert sorted(no_examples) == sorted(WORKLOADS)
    assert set(EVERY_PYTHON) <= set(ids)
    assert sorted(i.split("-")[0] for i in EVERY_PYTHON) == sorted(WORKLOADS)


def test_crash_tests_run_once_per_broker_and_worker_pool() -> None:
    """The durable preset differs by broker and pool (threads or prefork): the
    crash tests run on exactly one entry of each pair, the chaos test on one
    entry per broker, one on each pool, and neither anywhere else. Their tests
    on both databases run on one per entry: each database meets each broker and
    each pool in the crash tests, and both are chaos-tested."""
    pools = {"async_io": "threads", "blocking_io": "threads"}

    def pairs(tested: dict[str, str]) -> list[tuple[str | None, str, str]]:
        entries = [entry for entry in ENTRIES if entry.id in tested]
        assert len(entries) == len(tested)
        return sorted(
            (e.broker, pools.get(e.workload, "prefork"), tested[e.id]) for e in entries
        )

    brokers: tuple[str | None, ...] = ("rabbitmq", "redis")
    pool_kinds = ("prefork", "threads")
    crash = pairs(CRASH_TESTED)
    every_pair = [(b, p) for b in brokers for p in pool_kinds]
    assert [(b, p) for b, p, _ in crash] == every_pair
    for database in DATABASES:
        assert sorted(str(b) for b, _, d in crash if d == database) == list(brokers)
        assert sorted(p for _, p, d in crash if d == database) == list(pool_kinds)
    chaos = pairs(CHAOS_TESTED)
    assert [b for b, _, _ in chaos] == list(brokers)
    assert sorted(p for _, p, _ in chaos) == list(pool_kinds)
    assert sorted(d for _, _, d in chaos) == sorted(DATABASES)
    for entry in ENTRIES:
        options, skipped = entry.suite_options, entry.skipped_tests
        # The recovery tests (`-m ""`: every test, marked or not) where named only.
        assert (("-m", "") == options[:2]) == (entry.id in CRASH_TESTED)
        assert (CHAOS_TEST in skipped) == (
            entry.id in CRASH_TESTED and entry.id not in CHAOS_TESTED
        )
        assert all(f"--deselect={node}" in options for node in skipped)
        for node in skipped:
            path, _, test = node.partition("::")
            if test.endswith("]"):  # one database's run: never the entry's database
                named = (CHAOS_TESTED if path == CHAOS_TEST else CRASH_TESTED)[entry.id]
                assert not test.endswith(f"[{named}]"), node
        # One entry runs its suite in parallel, as its owner does.
        one_process = "--numprocesses 0" in " ".join(options)
        assert one_process == (entry.id != PARALLEL_TESTED)
    both = next(entry for entry in ENTRIES if entry.id == "blocking_io-durable-redis")
    assert both.skipped_tests[:3] == (
        f"{CRASH_TEST}::test_a_job_committed_but_never_published_is_published_again"
        "[sqlite]",
        f"{CRASH_TEST}::test_a_backlog_is_not_taken_for_a_loss[sqlite]",
        f"{CHAOS_TEST}::test_chaos_loses_no_job_and_applies_no_effect_twice"
        "[postgresql]",
    )
    # The registry's tests on both databases: on the crash tests' one only.
    rest = both.skipped_tests[3:]
    assert rest and all(node.endswith("[sqlite]") for node in rest)
    assert {node.partition("::")[0] for node in rest} == {REGISTRY_TEST, TAKEOVER_TEST}


def test_shared_tests_run_on_each_workload_background_broker_and_pool() -> None:
    """An entry leaves out a shared test only where others run it on the same
    code: SHARED_TESTS on one entry of each workload and of each background
    answer, DURABLE_TESTS (the crash tests among them) wherever the recovery
    tests run, one entry per broker and pool; the largest entry runs them all."""
    shared = [e for e in ENTRIES if not set(SHARED_TESTS) & set(e.skipped_tests)]
    assert sorted({e.workload for e in shared}) == sorted(WORKLOADS)
    assert {(e.task_durability, e.broker) for e in shared} == {
        ("ephemeral", None),
        ("durable", "redis"),
        ("durable", "rabbitmq"),
    }
    for entry in ENTRIES:
        skipped = set(entry.skipped_tests)
        assert (entry in shared) == (entry.id in (*EVERY_PYTHON, PARALLEL_TESTED))
        assert skipped.isdisjoint(SHARED_TESTS) or set(SHARED_TESTS) <= skipped
        runs_durable = entry.durable and skipped.isdisjoint(DURABLE_TESTS)
        assert runs_durable == (entry.id in (*CRASH_TESTED, PARALLEL_TESTED))
    largest = next(entry for entry in ENTRIES if entry.id == PARALLEL_TESTED)
    assert largest.skipped_tests == ()


def test_answers_name_only_what_differs_from_the_defaults() -> None:
    plain = Combination("mixed", "ephemeral", None)
    assert plain.answers == {"workload": "mixed", "task_durability": "ephemeral"}
    odd = Combination("cpu_bound", "durable", "redis", False, False, "3.13")
    assert odd.answers == {
        "workload": "cpu_bound",
        "task_durability": "durable",
        "broker": "redis",
        "shed_load": "false",
        "examples": "false",
        "python_version": "3.13",
    }
    assert odd.id == "cpu_bound-durable-redis-no-shedding-no-examples"


def test_loopsafe_python_reaches_the_answers() -> None:
    code = "from combinations import COMBINATIONS as C; print(C[0].answers)"
    env = {**os.environ, "LOOPSAFE_PYTHON": "3.12"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO / "tests",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'python_version': '3.12'" in out
