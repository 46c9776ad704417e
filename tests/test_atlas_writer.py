"""The atlas's background writer: jobs in order, one at a time, errors raised on the rendering thread."""

from __future__ import annotations

import threading
import time

import pytest

from probe.atlas.writer import Writer


def test_jobs_run_in_order_off_the_calling_thread_and_all_finish_on_exit():
    done: list[tuple[int, str]] = []
    with Writer() as writer:
        for number in range(5):
            writer.submit(lambda number=number: (time.sleep(0.01), done.append((number, threading.current_thread().name))))
    assert [n for n, _ in done] == list(range(5))
    assert all(name != threading.current_thread().name for _, name in done)


def test_at_most_one_job_waits_so_submit_blocks_on_the_previous_one():
    release = threading.Event()
    started = []
    with Writer() as writer:
        writer.submit(lambda: (started.append(1), release.wait(5)))
        blocked = threading.Thread(target=writer.submit, args=(lambda: started.append(2),))
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive() and started == [1]  # the second job waits for the first
        release.set()
        blocked.join(5)
    assert started == [1, 2]


def test_a_failed_job_is_raised_by_the_next_submit_and_later_jobs_do_not_run():
    ran = []
    with pytest.raises(OSError, match="disk full"):
        with Writer() as writer:
            writer.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
            writer.submit(lambda: ran.append("after"))
    assert ran == []


def test_an_error_in_the_block_still_lets_the_pending_job_finish_and_is_the_one_raised():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with Writer() as writer:
            writer.submit(lambda: (time.sleep(0.05), done.append("chunk written")))
            raise KeyboardInterrupt
    assert done == ["chunk written"]


def test_a_disk_full_in_the_writer_is_one_line_exit_1_and_keeps_the_chunks_written_before(tmp_path, monkeypatch):
    import errno

    from click.testing import CliRunner

    import probe.atlas.runner as runner
    from probe.cli.main import cli

    real, calls = runner.write_png, []

    def full_after_ten(path, image, **options):
        calls.append(path)
        if len(calls) > 10:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, image, **options)

    monkeypatch.setattr(runner, "write_png", full_after_ten)
    out = tmp_path / "atlas"
    result = CliRunner().invoke(cli, ["atlas", "--model", "digits", "--layers", "conv1", "--dataset", "zoo", "--steps",
                                      "1", "--limit", "8", "--examples", "1", "--chunk", "4", "--out", str(out)])
    assert result.exit_code == 1 and "--out" in result.output and "No space left" in result.output
    assert "Traceback" not in result.output
    kept = sorted(p.name for p in (out / "records").glob("conv1-*.json"))
    assert kept == ["conv1-0000-0003.json", "conv1-0004-0007.json"]  # chunk 3's 11th image failed: no record
