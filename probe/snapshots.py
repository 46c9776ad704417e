"""Which steps of a run keep an intermediate image: ``count`` of them, evenly spread (maximize's ``--snapshots``,
style transfer's ``snapshots``). Free of torch: the commands' memory checks count them before a run."""

from __future__ import annotations

__all__ = ["snapshot_count", "snapshot_steps"]


def snapshot_count(total: int, count: int) -> int:
    """How many steps :func:`snapshot_steps` keeps, without listing them (for a memory check before it lists
    2**31 of them): ``count``, or every step strictly inside ``(0, total)`` when that is fewer."""
    return max(0, min(count, total - 1))


def snapshot_steps(total: int, count: int) -> list[int]:
    """``count`` steps evenly spread strictly inside ``(0, total)``, as style transfer spreads its snapshots.

    ``snapshot_steps(30, 2)`` -> ``[10, 20]``; fewer when ``total`` is small (every step inside when
    ``count`` asks for more, without looping over ``count``): :func:`snapshot_count` of them.
    """
    if snapshot_count(total, count) == total - 1:  # every step inside
        return list(range(1, total))
    return sorted({round(total * i / (count + 1)) for i in range(1, count + 1)} - {0, total})
