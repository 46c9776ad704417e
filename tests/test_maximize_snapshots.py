"""``probe maximize``'s memory check counts the snapshots maximize keeps, not the ones asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from probe.snapshots import snapshot_count, snapshot_steps


def test_the_count_is_the_length_of_the_steps_kept_without_listing_them() -> None:
    assert all(snapshot_count(total, count) == len(snapshot_steps(total, count))
               for total in range(1, 40) for count in range(0, 45))
    assert snapshot_count(2**31 - 1, 2**31 - 1) == 2**31 - 2  # counted, not listed


def test_the_memory_check_counts_the_snapshots_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--steps 3 --snapshots 5`` keeps the steps 1 and 2; the check counted min(5, 3) = 3."""
    import probe.cli.maximize as command
    from probe.cli.main import cli

    counted = []
    check = command.check_results_fit
    monkeypatch.setattr(command, "check_results_fit", lambda images, shape, steps, snapshots, *rest: counted.append(
        snapshots) or check(images, shape, steps, snapshots, *rest))
    result = CliRunner().invoke(cli, ["maximize", "--target", "conv2:0", "--steps", "3", "--snapshots", "5",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert counted == [2] == [len(snapshot_steps(3, 5))]
