"""Copier's questions: invalid answers are refused before anything is written."""

import ast
import json
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import render, uv

BLOCKING = {"workload": "blocking_io"}
DURABLE = {"task_durability": "durable"}

INVALID = [
    ({"project_name": ""}, "project_name"),
    ({"project_name": "   "}, "project_name"),
    ({"project_name": "9 lives"}, "must start with a letter"),
    ({"project_name": "日本"}, "must start with a letter"),
    ({"project_name": "x" * 61}, "keep it to 60"),
    ({"project_name": "two\nlines"}, "one line"),
    ({"description": "tab\tseparated"}, "one line"),
    ({"author_name": "Ann\nBell"}, "one line"),
    ({"author_email": 'an"n@example.com'}, "author_email"),
    ({"package_name": "9lives"}, "not a valid"),
    ({"package_name": "My-Pkg"}, "not a valid"),
    ({"package_name": ""}, "not a valid"),
    ({"package_name": "class"}, "keyword"),
    ({"package_name": "match"}, "keyword"),
    ({"package_name": "json"}, "standard library"),
    ({"package_name": "asyncio"}, "standard library"),
    ({"package_name": "celery"}, "dependency"),
    ({"package_name": "fastapi"}, "dependency"),
    ({"package_name": "anyio"}, "dependency"),
    ({"author_name": " "}, "author_name"),
    ({"author_email": "nobody"}, "author_email"),
    ({"python_version": "3.10"}, "python_version"),
    ({"task_durability": "forever"}, "task_durability"),
    ({"workload": "gpu"}, "workload"),
    ({"broker": "redis"}, "only applies to task_durability=durable"),
    ({**DURABLE, "broker": "kafka"}, "broker"),
    ({**BLOCKING, "peak_blocking_calls_per_s": "0"}, "peak_blocking_calls_per_s"),
    ({**BLOCKING, "peak_blocking_calls_per_s": "-5"}, "peak_blocking_calls_per_s"),
    ({**BLOCKING, "peak_blocking_calls_per_s": "many"}, "peak_blocking_calls_per_s"),
    ({**BLOCKING, "blocking_call_ms": "0"}, "blocking_call_ms"),
    ({**BLOCKING, "blocking_call_ms": "1.5"}, "blocking_call_ms"),
    ({"thread_pool_size": "0"}, "thread_pool_size"),
    ({"thread_pool_size": "-1"}, "thread_pool_size"),
    ({"thread_pool_size": "lots"}, "thread_pool_size"),
    ({"thread_pool_size": "20000"}, "more worker processes"),
    ({"lag_threshold_ms": "0"}, "lag_threshold_ms"),
    ({"lag_threshold_ms": "soon"}, "lag_threshold_ms"),
]


@pytest.mark.parametrize(("answers", "message"), INVALID, ids=repr)
def test_invalid_answer_is_refused_and_nothing_written(
    answers: dict[str, str], message: str, tmp_path: Path
) -> None:
    destination = tmp_path / "service"
    with pytest.raises(ValueError, match=message):
        render(destination, answers)
    assert not destination.exists() or not any(destination.iterdir())


def test_invalid_answer_leaves_an_existing_directory_untouched(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="package_name"):
        render(tmp_path, {"package_name": "json"})
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def answers_of(project: Path) -> dict[str, object]:
    answers: dict[str, object] = yaml.safe_load(
        (project / ".copier-answers.yml").read_text()
    )
    return answers


def test_names_are_derived_from_the_project_name(tmp_path: Path) -> None:
    project = render(tmp_path / "p", {"project_name": "Billing API v2"})
    assert (project / "src" / "billing_api_v2" / "main.py").is_file()
    assert 'name = "billing-api-v2"' in (project / "pyproject.toml").read_text()
    assert answers_of(project)["package_name"] == "billing_api_v2"


@pytest.mark.parametrize(
    ("calls_per_s", "call_ms", "expected"),
    [("500", "300", "150"), ("10", "100", "40"), ("1000", "2500", "2500")],
)
def test_thread_pool_defaults_to_littles_law(
    calls_per_s: str, call_ms: str, expected: str, tmp_path: Path
) -> None:
    answers = {
        **BLOCKING,
        "peak_blocking_calls_per_s": calls_per_s,
        "blocking_call_ms": call_ms,
    }
    project = render(tmp_path / "p", answers)
    assert answers_of(project)["thread_pool_size"] == expected
    settings = (project / "src" / "my_service" / "runtime" / "settings.py").read_text()
    assert f"thread_pool_size: int = Field({expected}, ge=1)" in settings


@pytest.mark.parametrize("workload", ["async_io", "cpu_bound"])
def test_pool_questions_are_not_asked_without_blocking_calls(
    workload: str, tmp_path: Path
) -> None:
    answers = answers_of(render(tmp_path / "p", {"workload": workload}))
    assert answers["thread_pool_size"] == "40"
    assert "peak_blocking_calls_per_s" not in answers
    assert "broker" not in answers


def test_message_warns_past_two_thousand_threads(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    render(tmp_path / "p", {**BLOCKING, "thread_pool_size": "2500"}, quiet=False)
    message = capfd.readouterr().err
    assert "2500 threads" in message
    assert "run more worker processes" in message


# Free text that has broken renders: quotes, backslashes, non-ASCII, Jinja's own
# delimiters, TOML's and Markdown's specials.
AWKWARD = {
    "project_name": 'Ünïcode "Quoted" {{ name }} \\ API',
    "description": (
        'Says "hi" \\o/ {{ not jinja }} {% raw %} `code` *bold* # é 漢字 🚀 """'
    ),
    "author_name": 'O\'Brien "The \\ Dev" {{x}}',
}


def test_awkward_free_text_renders_a_working_project(tmp_path: Path) -> None:
    """Every free-text answer lands escaped: the project installs, lints and its
    tests pass (examples off, the smallest project: what is tested is the text)."""
    answers = {**AWKWARD, "package_name": "awkward", "examples": "false"}
    project = render(tmp_path / "p", answers)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    # Letters outside a-z drop out of the distribution name (PEP 508 allows no more).
    assert pyproject["project"]["name"] == "n-code-quoted-name-api"
    assert pyproject["project"]["description"] == AWKWARD["description"]
    assert pyproject["project"]["authors"][0]["name"] == AWKWARD["author_name"]
    readme = (project / "README.md").read_text()
    assert readme.startswith(
        f"# {AWKWARD['project_name']}\n\n{AWKWARD['description']}\n"
    )
    docstring = ast.get_docstring(
        ast.parse((project / "src" / "awkward" / "__init__.py").read_text())
    )
    assert docstring is not None
    assert " ".join(docstring.split()) == AWKWARD["description"]
    assert answers_of(project)["description"] == AWKWARD["description"]
    uv("sync", "--quiet", cwd=project)
    uv("run", "ruff", "check", ".", cwd=project)
    uv("run", "ruff", "format", "--check", ".", cwd=project)
    # The description reaches the OpenAPI document through the package metadata.
    uv(
        "run",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_routes.py",
        cwd=project,
    )
    openapi = uv(
        "run",
        "python",
        "-c",
        "import json; from awkward.main import app;"
        " print(json.dumps(app.openapi()['info']))",
        cwd=project,
    )
    assert json.loads(openapi)["description"] == AWKWARD["description"]
