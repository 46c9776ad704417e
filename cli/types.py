"""Click parameter types shared by the commands: numbers that must be finite, seeds that torch accepts, output
folders."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from probe.checks import MAX_COUNT, MAX_SEED

__all__ = ["FiniteFloat", "finite", "count", "blank", "refuse_blank", "OutFolder", "SEED", "MAX_SEED", "MAX_COUNT"]


class FiniteFloat(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses ``nan``, ``inf`` and ``-inf``.

    click's own float types accept them (``float("nan")`` parses, and every comparison with NaN is
    false, so ``FloatRange(min=0)`` lets NaN through); a NaN learning rate or weight then fails deep
    inside torch or silently drops a term. The error names the option (exit code 2).
    """

    name = "float"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        """``X`` in the help, the range beside it (``[x>=0]``), not click's ``FLOAT RANGE``."""
        return "X"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value`` as a float, refuse non-finite values, then check the range."""
        number = click.types.FloatParamType.convert(self, value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; give a plain number such as 0.05", param, ctx)
        return super().convert(number, param, ctx)


def finite(
    min: float | None = None, max: float | None = None, *, min_open: bool = False, max_open: bool = False
) -> FiniteFloat:
    """A finite float option type with an optional range (``finite(min=0)``: a finite number >= 0)."""
    return FiniteFloat(min=min, max=max, min_open=min_open, max_open=max_open)


def blank(value: Any) -> bool:
    """Whether a command-line value is empty or only spaces (``--x "$VAR"`` with ``VAR`` unset)."""
    return isinstance(value, str) and not value.strip()


def refuse_blank(value: Any, param: click.Parameter | None, ctx: click.Context | None) -> None:
    """Raise :class:`click.BadParameter` (exit code 2, naming the option) when ``value`` is :func:`blank`.

    An empty value is never meant: click makes ``""`` the current folder for a path (``--out ""`` wrote the
    gallery where the shell was, ``--weights ""`` read ``.``), the root module for a layer, "absent" for an
    option whose code tests ``if value:`` (``--target ""`` was ignored). The message says what to give: the
    type's ``blank_hint`` when it has one, else the option's default.
    """
    if not blank(value):
        return
    hint = getattr(getattr(param, "type", None), "blank_hint", None)
    if hint is None and isinstance(param, click.Argument):
        hint = f"give {param.human_readable_name}"
    elif hint is None:
        name = param.opts[0] if param is not None and param.opts else "the option"
        default = param is not None and param.default not in (None, (), [])
        hint = f"give a value, or leave {name} out" + (" for its default" if default else "")
    raise click.BadParameter(f"{value!r} is empty (an unset shell variable?); {hint}", ctx=ctx, param=param)


class OutFolder(click.Path):
    """``--out DIR``: a folder path (:class:`pathlib.Path`) that is not empty.

    click turns ``--out ""`` (``--out "$DIR"`` with ``DIR`` unset) into ``Path("")``, which is the current
    folder: the gallery would land where the user's shell is. The error names the option (exit code 2).
    """

    blank_hint = "give a folder, or leave --out off for the default runs/<command>-<what>"

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Refuse an empty or blank path, then convert as :class:`click.Path`."""
        refuse_blank(value, param, ctx)
        return super().convert(value, param, ctx)


class Count(click.IntRange):
    """An :class:`click.IntRange` whose help shows ``N`` and ``x>=1`` (not ``INTEGER RANGE`` and the hidden
    maximum, :data:`MAX_COUNT`)."""

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        """``N`` in the help, the range beside it (``[x>=1]``)."""
        return "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse and check ``value``; past the maximum, say what the maximum is."""
        number = click.types.IntParamType.convert(self, value, param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"{number} is more than {self.max}, the largest this option takes", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        if self.max == MAX_COUNT and self.min is not None:
            return f"x>={self.min}"
        if self.max == MAX_SEED and self.min is not None:  # not 9223372036854775807 in every command's help
            return f"{self.min}<=x<2^63"
        return super()._describe_range()


def count(min: int = 1, max: int = MAX_COUNT) -> click.IntRange:
    """An integer option from ``min`` to ``max`` (default :data:`MAX_COUNT`): steps, images, channels, pixels.

    click's ``IntRange(min=1)`` alone lets ``99999999999999999999`` through, which then fails inside
    torch with a traceback instead of naming the option.
    """
    return Count(min=min, max=max)


SEED = Count(min=0, max=MAX_SEED)
"""``--seed``: 0 to 2**63-1, the seeds a ``torch.Generator`` takes."""

