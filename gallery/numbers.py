"""Numbers as people read them: one formatter for every page, caption and table cnn-probe writes.

``number(1234.5678)`` is ``1,235``, ``number(0.05000000000000001)`` is
``0.05``, ``number(-3.872, digits=3)`` is ``-3.87``, ``number(1.2e-7)`` is
``1.2e-7``; never ``1.235e+03``, never a 16-digit float. :func:`quantity`
adds the unit a field's name implies (``seconds`` -> ``1.9 s``, ``*_mib`` ->
``1,618 MiB``, ``*accuracy`` -> ``99.7%``, sizes -> ``64×64``). Knows nothing
of HTML: pages escape what these return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["number", "ratio", "probability", "percentage", "seconds", "quantity", "DASH", "MINUS"]

DASH = "\u2014"
"""What stands for a missing value (None, NaN)."""

MINUS = "\u2212"
"""The typographic minus sign, for pages (captions drawn into PNGs keep the ASCII hyphen, which every font has)."""

LARGE = 1e15
"""From here on numbers are written with an exponent (``1.2e+18`` has no readable digit grouping)."""

SMALL = 1e-4
"""Below this (and above 0) numbers are written with an exponent (``1.2e-7``, not ``0.00000012``)."""


def _exponent(value: float, digits: int) -> str:
    mantissa, _, power = f"{value:.{max(digits - 1, 0)}e}".partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(power):+d}" if int(power) > 0 else f"{mantissa}e{int(power)}"


def number(value: Any, *, digits: int = 4, sign: bool = False, minus: str = "-") -> str:
    """``value`` to ``digits`` significant digits, grouped in thousands, trailing zeros dropped.

    Integers (and floats of magnitude ``10**digits`` or more) keep every digit
    of their integer part: ``12,346``. None and NaN are :data:`DASH`; infinities
    are ``inf``; booleans ``yes`` / ``no``; anything else its ``str``.

    Args:
        value: an int, a float (numpy and torch scalars too, through ``.item()``), or anything.
        digits: significant digits of a fractional number (default 4).
        sign: write ``+`` before positive numbers (for changes: ``+0.3``); default False.
        minus: the minus sign (default the ASCII hyphen; pages pass :data:`MINUS`).

    Returns:
        The text, e.g. ``"1,618"``, ``"0.642"``, ``"-3.87"``, ``"2.5e-6"``.
    """
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (int, float)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return DASH
    negative = value < 0
    size = abs(value)
    if math.isinf(size):
        text = "inf"
    elif isinstance(size, int) or (size >= 10 ** digits and size < LARGE) or (size.is_integer() and size < LARGE):
        text = f"{round(size):,}"
    elif size >= LARGE or size < SMALL and size > 0:
        text = _exponent(size, digits)
    else:
        decimals = max(digits - 1 - math.floor(math.log10(size)), 0) if size else 0
        text = f"{size:,.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if text == "0":  # rounded away: keep one significant digit instead of claiming zero
            text = _exponent(size, 1)
    if text == "0" or (not negative and not sign):
        return text
    return (minus if negative else "+") + text


def ratio(value: Any, *, digits: int = 3, minus: str = "-") -> str:
    """A ratio with its unit: ``2.48×``, ``-0.552×`` (:data:`DASH` for none; other values as :func:`number` writes them)."""
    text = number(value, digits=digits, minus=minus)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"{text}\u00d7" if numeric and text != DASH else text


def probability(value: Any, *, digits: int = 2) -> str:
    """A probability: two decimals (``0.97``, ``1.00``) where they keep a digit that is not zero, else
    ``digits`` significant digits (``0.0012``, ``3.4e-7``): with two decimals, 1,000 classes near 0.001
    each all read ``0.00``. Non-numbers as :func:`number` writes them."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return number(value)
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.005 else number(value, digits=digits)


def percentage(value: float) -> str:
    """A percentage without the ``%``, as :func:`probability` writes a probability: one decimal (``41.3``) where
    it keeps a digit that is not zero, else two significant digits (``0.012``, ``3.4e-5``), so 1,000 classes
    near 0.1% each do not all read ``0.0``."""
    return f"{value:.1f}" if value == 0 or abs(value) >= 0.05 else number(value, digits=2)


def seconds(value: Any) -> str:
    """A duration: ``0.42 s``, ``16 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        return number(value)
    if value < 60:
        return f"{number(value, digits=2) if value < 10 else round(value)} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _size(value: Any) -> str | None:
    """``[64, 64]`` -> ``64×64``; None when ``value`` is not a list of two or three positive integers."""
    if (isinstance(value, (list, tuple)) and 2 <= len(value) <= 3
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        return "\u00d7".join(str(v) for v in value)
    return None


SIZE_KEYS = ("size", "shape", "sizes")
"""Fields whose pairs of integers are sizes (``image_size``, ``input_size``, ``octave_sizes``)."""


def quantity(value: Any, key: str = "", *, minus: str = "-") -> str:
    """A field's value as a reader wants it, with the unit its name implies; never a Python repr.

    ``key`` picks the unit: ``seconds`` / ``*_seconds`` / ``*_s`` -> :func:`seconds`;
    ``*_mib`` -> ``MiB``; ``*accuracy`` in [0, 1] -> percent; ``*percent`` -> ``%``;
    ``*ratio`` -> ``×``; ``*range`` pairs -> ``low to high``;
    ``*size*`` / ``*shape*`` pairs of integers -> ``64×64``. Lists are joined with
    commas (nested lists in parentheses), mappings read ``key: value; key: value``,
    empty ones :data:`DASH`. Numbers go through :func:`number`.
    """
    name = key.lower()
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {quantity(v, str(k), minus=minus)}" for k, v in value.items()) or DASH
    if isinstance(value, (list, tuple)):
        if name.endswith("range") and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"{number(value[0], minus=minus)} to {number(value[1], minus=minus)}"
        if any(name.endswith(k) or f"{k}_" in name for k in SIZE_KEYS):
            size = _size(value)
            if size is not None:
                return size
            if value and all(_size(v) for v in value):
                return ", ".join(_size(v) or "" for v in value)
        parts = (f"({quantity(item, minus=minus)})" if isinstance(item, (list, tuple))
                 else quantity(item, key, minus=minus) for item in value)
        return ", ".join(parts) or DASH
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if numeric and (name == "seconds" or name.endswith("_seconds") or name.endswith("_s")):
        return seconds(value)
    if numeric and name.endswith("_mib"):
        return f"{number(value, digits=4, minus=minus)} MiB"
    if numeric and name.endswith("accuracy") and 0 <= value <= 1:
        return f"{number(100 * value, digits=3)}%"
    if numeric and name.endswith("ratio"):
        return ratio(value, minus=minus)
    if numeric and name.endswith("percent"):
        return f"{number(value, digits=3, minus=minus)}%"
    return number(value, minus=minus)
