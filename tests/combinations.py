"""The supported answer combinations: the one list behind every matrix.

The template's pytest matrix imports COMBINATIONS; the CI workflow's matrix job
runs `python tests/combinations.py` and reads the JSON it prints.
"""

import json
from typing import NamedTuple

WORKLOADS = ("async_io", "blocking_io", "cpu_bound", "mixed")
BACKGROUND = (("ephemeral", None), ("durable", "redis"), ("durable", "rabbitmq"))


class Combination(NamedTuple):
    workload: str
    task_durability: str
    broker: str | None

    @property
    def id(self) -> str:
        return "-".join(part for part in self if part)

    @property
    def answers(self) -> dict[str, str]:
        """The answers that pick this combination, as `--data` would pass them."""
        answers = {"workload": self.workload, "task_durability": self.task_durability}
        if self.broker:
            answers["broker"] = self.broker
        return answers


COMBINATIONS = [
    Combination(workload, durability, broker)
    for workload in WORKLOADS
    for durability, broker in BACKGROUND
]

if __name__ == "__main__":
    print(json.dumps({"include": [c.answers | {"id": c.id} for c in COMBINATIONS]}))
