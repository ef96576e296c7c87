"""The edits users make first to a rendered project, and the check they were kept.

tests/test_render.py makes them on every fresh render before running its suite
(so the suite proves the edited project lints and passes, the user's test
included); tests/test_update.py makes them before `copier update` and checks
that the update kept them.
"""

import tomllib
from pathlib import Path

import yaml
from helpers import uv


def package_of(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    package: str = answers["package_name"]
    return package


USER_IMPORT = "from {package}.pricing import price_of\n"
USER_ENDPOINT = """

@router.get("/orders/{{order_id}}")
async def read_order(order_id: int) -> dict[str, int]:
    return {{"order_id": order_id, "price": price_of(order_id)}}
"""

USER_MODULE = '''"""Prices: the user's own module."""


def price_of(order_id: int) -> int:
    return order_id * 100
'''

USER_TEST = """import httpx


async def test_read_order(client: httpx.AsyncClient) -> None:
    response = await client.get("/orders/7")
    assert response.json() == {"order_id": 7, "price": 700}
"""

USER_README = (
    "\n## Deploying\n\nOur own notes: deploy with the platform team's pipeline.\n"
)
USER_DEPENDENCY = "orjson"


def make_user_edits(project: Path, add_dependency: bool = True) -> None:
    """What users do first: an endpoint using a module of their own and its test,
    a dependency (`uv add`), a section of the README, a setting in `.env`."""
    package = package_of(project)
    source = project / "src" / package
    routes = source / "routes.py"
    text = routes.read_text().replace(
        "from fastapi import APIRouter\n",
        "from fastapi import APIRouter\n\n" + USER_IMPORT.format(package=package),
    )
    routes.write_text(text + USER_ENDPOINT.format(package=package))
    (source / "pricing.py").write_text(USER_MODULE)
    (project / "tests" / "test_orders.py").write_text(USER_TEST)
    with (project / "README.md").open("a") as readme:
        readme.write(USER_README)
    (project / ".env").write_text("THREAD_POOL_SIZE=64\n")
    if add_dependency:
        uv("add", "--no-sync", USER_DEPENDENCY, cwd=project)


def assert_user_edits_intact(project: Path) -> None:
    package = package_of(project)
    source = project / "src" / package
    routes = (source / "routes.py").read_text()
    assert USER_IMPORT.format(package=package) in routes
    assert routes.endswith(USER_ENDPOINT.format(package=package))
    assert (source / "pricing.py").read_text() == USER_MODULE
    assert (project / "tests" / "test_orders.py").read_text() == USER_TEST
    assert (project / "README.md").read_text().endswith(USER_README)
    assert (project / ".env").read_text() == "THREAD_POOL_SIZE=64\n"
    dependencies = tomllib_dependencies(project)
    assert any(d.startswith(USER_DEPENDENCY) for d in dependencies)


def tomllib_dependencies(project: Path) -> list[str]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    dependencies: list[str] = pyproject["project"]["dependencies"]
    return dependencies
