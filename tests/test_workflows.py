"""The template's own workflows are valid, and their matrix is the supported list."""

import json
import sys

from combinations import COMBINATIONS
from helpers import REPO, run


def test_template_workflows_pass_actionlint() -> None:
    workflows = sorted(map(str, (REPO / ".github" / "workflows").glob("*.yml")))
    assert workflows
    run("actionlint", *workflows, cwd=REPO)


def test_workflow_matrix_is_the_combination_list() -> None:
    printed = run(sys.executable, "tests/combinations.py", cwd=REPO)
    ids = [entry["id"] for entry in json.loads(printed)["include"]]
    assert ids == [c.id for c in COMBINATIONS]
    assert len(ids) == 17  # 12 + no-shedding + 4 no-examples
