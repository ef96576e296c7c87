"""Prometheus' own lint of the metrics the service exposes."""

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def promtool() -> Callable[[str], None]:
    """Prometheus' own lint, `promtool check metrics`, as a function of the
    exposition text: any finding fails the test.

    promtool is no Python package: it ships with Prometheus (Debian and
    Ubuntu: in the `prometheus` package). Without it the tests that need it fail
    in CI (CI set, as GitHub Actions sets it) and are skipped elsewhere.
    """
    found = shutil.which("promtool")
    if found is None:
        message = (
            "promtool is not on PATH: it ships with Prometheus (Debian and "
            "Ubuntu: `apt-get install prometheus`, or take `usr/bin/promtool` "
            "out of the package: see .github/workflows/ci.yml)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    executable = found

    def check(text: str) -> None:
        assert text.strip(), "no metrics to check"  # promtool passes empty input
        checked = subprocess.run(
            [executable, "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        findings = (checked.stdout + checked.stderr).strip()
        if checked.returncode or findings:
            exited = f"promtool check metrics exited {checked.returncode}"
            pytest.fail(f"{exited}:\n{findings}", pytrace=False)

    return check
