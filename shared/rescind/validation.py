"""Turning untrusted input into models, with errors that name the problem and never echo the input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from rescind.exceptions import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)
ParsedT = TypeVar("ParsedT")

# An IAM user or role name: 1 to 64 of [\w+=,.@-]. The length is its own constraint rather than `{1,64}` in the
# pattern: pydantic's Rust regex compiles a bounded repetition of Unicode \w into a large automaton (~35 ms at
# every cold start that builds the model); `+` with max_length accepts exactly the same names.
IamName = Annotated[str, Field(pattern=r"^[\w+=,.@\-]+$", max_length=64)]


def describe_validation_error(error: ValidationError, *, limit: int = 5, field_name: Callable[[str], str] = str) -> str:
    """'field.path: reason' for each problem. Input values are left out: they may be secrets.

    `field_name` names the top-level field (the settings name it by its environment variable)."""
    problems = []
    for detail in error.errors(include_input=False, include_url=False, include_context=False)[:limit]:
        parts = [str(part) for part in detail["loc"]]
        location = ".".join([field_name(parts[0]), *parts[1:]] if parts else [])
        message = detail["msg"]
        if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # pydantic's text echoes the tag and lists enum reprs; say it plainly instead.
            from rescind.models.credentials import CredentialKind  # only for this message: the models load late

            location = f"{location}.kind" if location else "kind"
            known = ", ".join(str(kind) for kind in CredentialKind)
            message = f"missing or unknown kind (expected one of: {known})"
        problems.append(f"{location or '(root)'}: {message}")
    extra = error.error_count() - limit
    if extra > 0:
        problems.append(f"and {extra} more")
    return "; ".join(problems)


def parse_model(model: type[ModelT], data: Any, *, what: str) -> ModelT:
    """Validate `data` as `model`, or raise InvalidInput naming each failing field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(f"invalid {what}: {describe_validation_error(error)}") from None


def parse_with(adapter: TypeAdapter[ParsedT], data: Any, *, what: str) -> ParsedT:
    try:
        return adapter.validate_python(data)
    except ValidationError as error:
        raise InvalidInput(f"invalid {what}: {describe_validation_error(error)}") from None
