"""Every bound of the project, checked in one style (kornia's ``param_validation`` habit).

A message names where the value entered (an op, a config, a file), the argument, the bound
and the value: ``rotate: p must be a number in [0, 1], got 1.5``. Each function returns the
value converted to its plain type, so a caller checks and converts in one line. ``error``
picks the exception class (a ``ValueError`` subclass of the caller's package), so the checks
raise what each package documents.

Written by hand: the few lines below are what every call site needs, and no library gives
this message style for plain Python values.

Example:
    >>> check_number("rotate", "degrees", 15)
    15.0
    >>> check_int(None, "epochs", 0, lo=1)
    Traceback (most recent call last):
    ...
    ValueError: epochs must be an integer >= 1, got 0
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "INTERPOLATIONS",
    "MAX_SIDE",
    "check_choice",
    "check_class_names",
    "check_fill",
    "check_int",
    "check_number",
    "check_prob",
    "check_range",
    "check_size",
    "plain",
]

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
# The largest image side an op may produce (an output size, a padding): far above any training
# image, far below what a typo allocates (a 60,000-pixel pad asks for 43 GB).
MAX_SIDE = 8192


def _at(where: str | None) -> str:
    return f"{where}: " if where else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_prob(where: str | None, p: Any, *, error: type[Exception] = ValueError) -> float:
    """A probability in [0, 1] (NaN refused)."""
    if not _is_number(p) or not 0.0 <= float(p) <= 1.0:
        raise error(f"{_at(where)}p must be a number in [0, 1], got {p!r}")
    return float(p)


def _bound(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return ""


def check_number(
    where: str | None,
    arg: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    integer: bool = False,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_none: bool = False,
    error: type[Exception] = ValueError,
) -> Any:
    """A finite number (an integer with ``integer``) within the bounds; None if allowed.

    With one bound the message says ``must be >= lo``; with both, ``must be in [lo, hi]``.
    """
    if value is None and allow_none:
        return None
    kind = "an integer" if integer else "a number"
    if _is_number(value) and not math.isfinite(float(value)):
        kind = "a finite number"
        if lo is not None or hi is not None:
            kind += " " + _bound(lo, hi, lo_open, hi_open)
    orn = " or None" if allow_none else ""
    if (
        not _is_number(value)
        or not math.isfinite(float(value))
        or (integer and not float(value).is_integer())
    ):
        raise error(f"{_at(where)}{arg} must be {kind}{orn}, got {value!r}")
    v = float(value)
    too_low = lo is not None and (v <= lo if lo_open else v < lo)
    too_high = hi is not None and (v >= hi if hi_open else v > hi)
    if too_low or too_high:
        bound = _bound(lo, hi, lo_open, hi_open)
        what = f"an integer {bound}" if integer else bound
        raise error(f"{_at(where)}{arg} must be {what}{orn}, got {value!r}")
    return int(value) if integer else v


def check_int(
    where: str | None,
    arg: str,
    value: Any,
    lo: int | None = None,
    hi: int | None = None,
    *,
    allow_none: bool = False,
    error: type[Exception] = ValueError,
) -> Any:
    """An integer (not a bool, not 2.0) within the bounds; None if allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        # a float that happens to be whole is a typo in a config, not an integer
        orn = " or None" if allow_none else ""
        bound = f" {_bound(lo, hi, False, False)}" if lo is not None or hi is not None else ""
        raise error(f"{_at(where)}{arg} must be an integer{bound}{orn}, got {value!r}")
    return check_number(where, arg, value, lo, hi, integer=True, allow_none=allow_none, error=error)


def check_range(
    where: str | None,
    arg: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    center: float | None = None,
    integer: bool = False,
    error: type[Exception] = ValueError,
) -> tuple[Any, Any]:
    """A (min, max) range. A single number ``v`` means ``(center - v, center + v)`` when a
    center is given (torchvision's ColorJitter convention), else ``(-v, v)``."""
    if _is_number(value):
        v = check_number(where, arg, value, lo=0.0, integer=integer, error=error)
        c = 0.0 if center is None else center
        low, high = c - v, c + v
        if lo is not None:
            low = max(low, lo)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        low = check_number(where, f"{arg}[0]", value[0], integer=integer, error=error)
        high = check_number(where, f"{arg}[1]", value[1], integer=integer, error=error)
        if low > high:
            raise error(
                f"{_at(where)}{arg} must be (min, max) with min <= max, got {list(value)!r}"
            )
    else:
        raise error(f"{_at(where)}{arg} must be a number or a (min, max) pair, got {value!r}")
    if lo is not None and low < lo:
        raise error(f"{_at(where)}{arg} must be >= {lo}, got {value!r}")
    if hi is not None and high > hi:
        raise error(f"{_at(where)}{arg} must be <= {hi}, got {value!r}")
    if integer:
        return (int(low), int(high))
    return (float(low), float(high))


def check_size(
    where: str | None,
    arg: str,
    value: Any,
    *,
    allow_none: bool = False,
    max_side: int | None = MAX_SIDE,
    error: type[Exception] = ValueError,
) -> tuple[int, int] | None:
    """An int or (height, width), each side >= 1 and <= ``max_side`` (:data:`MAX_SIDE`)."""
    if value is None and allow_none:
        return None
    if _is_number(value):
        v = check_number(where, arg, value, 1, max_side, integer=True, error=error)
        return (v, v)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        h = check_number(where, f"{arg}[0]", value[0], 1, max_side, integer=True, error=error)
        w = check_number(where, f"{arg}[1]", value[1], 1, max_side, integer=True, error=error)
        return (h, w)
    raise error(f"{_at(where)}{arg} must be an int or (height, width), got {value!r}")


def check_class_names(
    where: str | None, arg: str, value: Any, *, error: type[Exception] = ValueError
) -> list[str]:
    """A non-empty list of distinct class names (read from a file).

    Example:
        >>> check_class_names("g.json", "names", ["a", "a"])
        Traceback (most recent call last):
        ...
        ValueError: g.json: names must be a list of distinct class names, got ['a', 'a']
    """
    strings = isinstance(value, list) and value and all(isinstance(n, str) for n in value)
    if not strings or len(set(value)) != len(value):
        raise error(
            f"{_at(where)}{arg} must be a list of distinct class names, got {str(value)[:80]}"
        )
    return list(value)


def check_choice(
    where: str | None,
    arg: str,
    value: Any,
    choices: Sequence[str],
    *,
    error: type[Exception] = ValueError,
) -> str:
    """One of ``choices``; the message lists them and suggests the closest."""
    if not isinstance(value, str) or value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise error(f"{_at(where)}{arg} must be one of {', '.join(choices)}, got {value!r}{hint}")
    return value


def check_fill(where: str | None, value: Any, *, error: type[Exception] = ValueError) -> Any:
    """A fill colour as a fraction of the maximum value (0 = black, 1 = white), or 3 of them."""
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(values) in (1, 3) and all(_is_number(v) and 0.0 <= v <= 1.0 for v in values):
        return [float(v) for v in values] if len(values) == 3 else float(values[0])
    raise error(
        f"{_at(where)}fill must be a fraction in [0, 1] of the maximum value, or 3 of them "
        f"(R, G, B), got {value!r}"
    )


def plain(value: Any) -> Any:
    """Tuples to lists and numpy scalars to Python numbers, recursively (JSON/YAML-ready)."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value
