"""Request bodies read as their JSON Schema says, no more leniently.

Pydantic's default (lax) mode takes `true` for 1 and "1" for 1, which the
OpenAPI document calls invalid. So body models are strict,
`model_config = ConfigDict(strict=True)`, and their integer fields `JsonInt`:
strict mode refuses 2.0 for an `int`, and JSON Schema counts 2.0 as an integer.
"""

from typing import Annotated

from pydantic import BeforeValidator


def whole_float_to_int(value: object) -> object:
    """2.0 becomes 2; anything else (2.5, true, "2") is left for `int` to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(whole_float_to_int)]
