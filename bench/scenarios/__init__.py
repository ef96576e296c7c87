"""The scenarios, in report order. Each module has the same interface:

- TITLE: the heading of its section;
- NEEDS: the rendered projects it uses (names from harness.PROJECTS), and
  optionally SMOKE_NEEDS: those a smoke run uses, if fewer;
- run(ctx: harness.Context) -> report.Section; an exception fails the run.
"""

from . import (
    s0_generator,
    s1_loop,
    s2_pool,
    s3_cpu,
    s4_overhead,
    s5_overload,
    s6_durability,
    s7_adaptive,
)

SCENARIOS = {
    "s0": s0_generator,
    "s1": s1_loop,
    "s2": s2_pool,
    "s3": s3_cpu,
    "s4": s4_overhead,
    "s5": s5_overload,
    "s6": s6_durability,
    "s7": s7_adaptive,
}
