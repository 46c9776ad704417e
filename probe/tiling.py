"""Split a large image into tiles so that gradients are computed piece by piece.

A gradient through a CNN keeps every intermediate activation of the forward
pass, so its memory grows with the image's area. Tiling bounds it by the
tile's area instead: the image is cut into *cores* that cover every pixel
exactly once, and each core is computed inside a *window* that adds a margin
of context on every side (clipped at the image's border). Only the core's part
of a window's result is kept.

Why a margin: a pixel near a core's border influences activations whose
receptive field reaches into the neighbouring tile. With a margin at least the
receptive field's radius (twice it for objectives that are not linear in the
activation, such as L2), the tiled gradient equals the untiled one exactly; a
smaller margin is an approximation whose seams :func:`probe.dream` hides by
moving the tile grid to a random offset at every step (``offset`` of :func:`tile_plan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Tile", "split", "tile_plan"]


@dataclass(frozen=True)
class Tile:
    """One tile: a core (the pixels it is responsible for) inside a window (what the network sees).

    Coordinates are pixel rows ``[top, bottom)`` and columns ``[left, right)``
    of the full image; the window contains the core.
    """

    top: int
    bottom: int
    left: int
    right: int
    window_top: int
    window_bottom: int
    window_left: int
    window_right: int

    @property
    def core(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices of the core in the full image."""
        return slice(self.top, self.bottom), slice(self.left, self.right)

    @property
    def window(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices of the window in the full image."""
        return slice(self.window_top, self.window_bottom), slice(self.window_left, self.window_right)

    @property
    def core_in_window(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices of the core relative to the window."""
        return (
            slice(self.top - self.window_top, self.bottom - self.window_top),
            slice(self.left - self.window_left, self.right - self.window_left),
        )

    @property
    def window_size(self) -> tuple[int, int]:
        """``(height, width)`` of the window."""
        return self.window_bottom - self.window_top, self.window_right - self.window_left


def split(length: int, tile: int) -> list[tuple[int, int]]:
    """Cut ``[0, length)`` into the fewest nearly equal intervals of at most ``tile``.

    >>> split(10, 4)
    [(0, 3), (3, 7), (7, 10)]
    """
    if length < 1 or tile < 1:
        raise ValueError(f"length and tile must be positive; got {length} and {tile}")
    count = math.ceil(length / tile)
    bounds = [round(i * length / count) for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _shifted(length: int, tile: int, offset: int) -> list[tuple[int, int]]:
    """:func:`split` of ``[0, length)`` with the grid moved by ``offset``: a first piece ``[0, offset % tile)``,
    then ``[offset % tile, length)`` split; one piece when ``length <= tile``."""
    start = offset % tile if length > tile else 0
    return ([(0, start)] if start else []) + [(start + a, start + b) for a, b in split(length - start, tile)]


def tile_plan(height: int, width: int, tile_size: int | None, margin: int = 0,
              offset: tuple[int, int] = (0, 0)) -> list[Tile]:
    """The tiles of a ``height x width`` image.

    Args:
        height: image rows.
        width: image columns.
        tile_size: the longest side of a core; None (or a size at least the
            image's) gives one tile, the whole image.
        margin: context added on every side of a core to make its window,
            clipped at the image's border (default 0).
        offset: ``(rows, columns)`` by which the grid of cores moves (modulo ``tile_size``; default none): the
            cores' seams fall elsewhere while the image stays where it is.

    Returns:
        Tiles in row-major order whose cores cover every pixel exactly once;
        every window is at most ``tile_size + 2 * margin`` on a side.
    """
    if tile_size is None or (tile_size >= height and tile_size >= width):
        return [Tile(0, height, 0, width, 0, height, 0, width)]
    margin = max(0, int(margin))
    tiles = []
    for top, bottom in _shifted(height, tile_size, int(offset[0])):
        for left, right in _shifted(width, tile_size, int(offset[1])):
            tiles.append(
                Tile(
                    top, bottom, left, right,
                    max(0, top - margin), min(height, bottom + margin),
                    max(0, left - margin), min(width, right + margin),
                )
            )  # fmt: skip
    return tiles
