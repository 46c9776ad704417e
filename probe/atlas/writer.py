"""One background thread that writes a finished chunk's files while the next chunk renders.

PNG encoding (zlib, which releases the GIL) costs as much per unit as a short
render on the CPU and leaves a GPU idle; handing it to a thread overlaps the
two. Jobs run in submission order and at most one waits, so memory stays at one
chunk's images, and a chunk's record still follows its own images (the
resume rule of :mod:`probe.atlas.records`). A job's error is raised by the
next :meth:`Writer.submit` or :meth:`Writer.wait`, on the rendering thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

__all__ = ["Writer"]


class Writer:
    """Run write jobs on one thread, in order, one at a time; use as a context manager.

    Leaving the block waits for the last job, also when the block raises (an
    interrupted run keeps the chunks it finished), and raises that job's error
    unless the block already raised one.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe-atlas-writer")
        self._pending: Future[None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Wait for the previous job (raising its error), then start ``job``."""
        self.wait()
        self._pending = self._pool.submit(job)

    def wait(self) -> None:
        """Wait until every submitted job is done; raise the error of a failed one."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            if kind is None:
                self.wait()
            else:
                pending, self._pending = self._pending, None
                if pending is not None:
                    pending.exception()  # wait for it; the block's own error is the one to report
        finally:
            self._pool.shutdown(wait=True)
