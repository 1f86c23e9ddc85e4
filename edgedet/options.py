"""Declared options: each runner (and builder) lists the options it takes, with a type and, where it has
them, the accepted values. Unknown or wrongly typed options are an InputError that lists what is accepted;
nothing is silently dropped."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class Option:
    type: type
    default: Any = None
    choices: tuple = ()
    help: str = ""
    upper: bool = False  # normalise strings to upper case before checking choices
    minimum: float | None = None  # numbers: the smallest accepted value


def _coerce(owner: str, name: str, spec: Option, value):
    if value is None:
        return None
    if spec.type is bool:
        if not isinstance(value, bool):
            raise InputError(f"{owner} option {name} must be True or False, got {value!r}")
        return value
    if spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                raise InputError(f"{owner} option {name} must be an integer, got {value!r}")
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise InputError(f"{owner} option {name} must be a number, got {value!r}") from None
        value = float(value)
    elif spec.type is str:
        if not isinstance(value, str):
            raise InputError(f"{owner} option {name} must be a string, got {value!r}")
        if spec.choices:  # names are case-insensitive; free text (paths) is kept as given
            value = value.upper() if spec.upper else value.lower()
    if spec.minimum is not None and isinstance(value, (int, float)) and value < spec.minimum:
        raise InputError(f"{owner} option {name} must be >= {spec.minimum:g}, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise InputError(f"{owner} option {name} must be one of {', '.join(map(str, spec.choices))}, got {value!r}")
    return value


def check_probability(name: str, value) -> float:
    """`value` as a float in [0, 1] (a score or IoU threshold); an InputError naming `name` otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise InputError(f"{name} must be in [0, 1], got {v}")
    return v


def validate_options(owner: str, declared: dict[str, Option], given: dict) -> dict:
    """Defaults filled in, values coerced; an unknown name is an InputError naming the accepted ones."""
    unknown = [k for k in given if k not in declared]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, declared, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        accepted = ", ".join(sorted(declared)) or "none"
        raise InputError(f"unknown option '{k}' for {owner}{hint}; accepted options: {accepted}")
    return {k: _coerce(owner, k, spec, given.get(k, spec.default)) for k, spec in declared.items()}
