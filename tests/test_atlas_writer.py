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
