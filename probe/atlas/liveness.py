"""Which rank is alive: a heartbeat in the run's store, so a hung or vanished rank costs ``timeout`` seconds, not 30 minutes.

torch.distributed notices a peer that never comes only when a collective times out (the process group's
timeout: 30 minutes by default, for ever on NCCL for a hung peer), and then cannot say which peer it was.
Here every rank of a run:

- **marks progress** (:meth:`Liveness.tick`) at every step of its work: each optimization step, dataset
  batch, chunk claimed, crop batch, and while it waits for the others;
- **beats**: a daemon thread adds 1 to the store key ``alive/<rank>`` every :data:`BEAT_S` seconds, but only
  while the rank's main thread marked progress within ``timeout`` seconds. A rank killed without a word
  (SIGKILL, the kernel's out-of-memory killer, its machine down) stops beating; so does one whose main
  thread is stuck (a deadlock, a hung file system, a peer's bug);
- **watches itself**: when its own main thread made no progress for ``timeout`` seconds, the thread writes
  why, and where the main thread is stuck, to ``gone/<rank>``, sets the run's stop key, prints one line on
  the process's stderr and ends the process (exit 1): a stuck main thread cannot be asked to raise;
- **waits through the store** (:meth:`Liveness.wait`): the ranks meet by setting keys, and a rank waiting
  for the others reads their beats; one whose beat has not moved for ``timeout`` seconds of the waiting
  rank's own clock (machines' clocks need not agree), or that wrote ``gone/<rank>``, ends the wait with
  :class:`RankGone`, which names it.

So a hung or vanished rank ends every rank within about ``timeout`` seconds of the moment they need it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from probe.choices import ATLAS_TIMEOUT_S as DEFAULT_TIMEOUT_S  # torch-free: the command's --timeout offers it
from probe.errors import ProbeRuntimeError

__all__ = ["BEAT_S", "DEFAULT_TIMEOUT_S", "Liveness", "RankGone", "ALIVE_KEY", "GONE_KEY"]

BEAT_S = 1.0
"""Seconds between heartbeats (at most a quarter of the timeout)."""
POLL_S = 0.02
"""Seconds between looks at the store while waiting for the others."""
_HERE = Path(__file__).resolve().parents[1]
_PACKAGES = (str(_HERE) + os.sep, str(_HERE.parent / "cli") + os.sep)
"""Where cnn-probe's own files are (``probe/``, and ``cli/`` of a source checkout), to say which of its calls
is stuck."""
RESUME = "every finished chunk is kept: rerun the same command to resume"
"""What to do after a failed run, in the words of every rank's message."""
ALIVE_KEY = "alive/"
GONE_KEY = "gone/"


class RankGone(ProbeRuntimeError):
    """A rank stopped beating for ``timeout`` seconds, or reported itself stuck.

    Attributes:
        ranks: the ranks found gone, in order.
    """

    def __init__(self, message: str, ranks: Sequence[int]) -> None:
        super().__init__(message)
        self.ranks = list(ranks)


def _frame_words(frame: Any) -> str:
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}"


def _where(thread_id: int | None) -> str:
    """Where the thread ``thread_id`` is: ``file:line in function`` of its innermost frame, and of the
    innermost frame of cnn-probe's own code when that is another (``..., called from hooks.py:929 in layers``)."""
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    if frame is None:
        return "an unknown place"
    words, ours = _frame_words(frame), frame
    while ours is not None and not ours.f_code.co_filename.startswith(_PACKAGES):
        ours = ours.f_back
    if ours is not None and ours is not frame:
        words += f", called from {_frame_words(ours)}"
    return words


class Liveness:
    """One rank's heartbeat, self-watch and store-based waiting (see the module docstring).

    Args:
        store: the run's store (a PrefixStore private to the run).
        rank, world: this rank and the number of ranks.
        timeout: seconds without progress after which a rank counts as hung or gone (> 0).
        stop_key: the run's stop key, set when this rank finds itself stuck.
        exit: what the self-watch calls to end a stuck process (default ``os._exit``; tests replace it).
    """

    def __init__(self, store: Any, rank: int, world: int, timeout: float, stop_key: str,
                 exit: Callable[[int], None] = os._exit) -> None:
        self.store, self.rank, self.world, self.timeout = store, rank, world, float(timeout)
        self.stop_key = stop_key
        self._exit = exit
        self._progress = time.monotonic()
        self._main = threading.get_ident()
        self._stopped = threading.Event()
        self._beat = min(BEAT_S, self.timeout / 4)
        self._seen: dict[int, tuple[int, float]] = {}  # rank: (last beat count read, when it last changed)
        self._thread = threading.Thread(target=self._run, name=f"probe-heartbeat-{rank}", daemon=True)

    def start(self) -> Liveness:
        """Beat once, then every :data:`BEAT_S` seconds in a daemon thread."""
        self.store.add(f"{ALIVE_KEY}{self.rank}", 1)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and watching (the rank is leaving; never raises)."""
        self._stopped.set()
        if self._thread.is_alive() and threading.get_ident() != self._thread.ident:
            self._thread.join(timeout=2 * self._beat)

    def tick(self) -> None:
        """Mark progress of the main thread (a clock read: cheap enough for every step)."""
        self._progress = time.monotonic()

    def stalled(self) -> float:
        """Seconds since the main thread last marked progress."""
        return time.monotonic() - self._progress

    def _run(self) -> None:
        while not self._stopped.wait(self._beat):
            try:
                if self.stalled() < self.timeout:
                    self.store.add(f"{ALIVE_KEY}{self.rank}", 1)
                    continue
                self._give_up()
                return
            except Exception:  # the store is gone (its host left): the main thread will find out itself
                return

    def _give_up(self) -> None:
        """The main thread is stuck: say where, tell the others, end the process."""
        reason = (f"rank {self.rank} made no progress for {self.timeout:g} s (its main thread is stuck at "
                  f"{_where(self._main)})")
        try:
            self.store.set(f"{GONE_KEY}{self.rank}", reason)
            self.store.set(self.stop_key, str(self.rank))
        except Exception:
            pass
        os.write(2, f"Error: {reason}; it stops now (--timeout {self.timeout:g}); {RESUME}\n".encode())
        self._exit(1)

    def gone(self, ranks: Sequence[int]) -> list[tuple[int, str]]:
        """Those of ``ranks`` that reported themselves stuck or whose beat has not moved for ``timeout``
        seconds of this rank's clock, with why: ``[(rank, reason)]`` (one store read per rank)."""
        now = time.monotonic()
        found = []
        for rank in ranks:
            if self.store.check([f"{GONE_KEY}{rank}"]):
                found.append((rank, self.store.get(f"{GONE_KEY}{rank}").decode()))
                continue
            beats = int(self.store.add(f"{ALIVE_KEY}{rank}", 0))
            last, since = self._seen.get(rank, (-1, now))
            if beats != last:
                self._seen[rank] = (beats, now)
            elif now - since > self.timeout:
                found.append((rank, f"rank {rank} gave no sign of life for {self.timeout:g} s (killed without a "
                                    "word, out of memory, its machine down, or stuck)"))
        return found

    def wait(self, keys: Sequence[str], what: str) -> None:
        """Return once every key of ``keys`` (key ``r`` is rank ``r``'s) is set; meanwhile mark this rank's
        progress and look at the missing ranks' beats (every :data:`BEAT_S` seconds).

        Raises:
            RankGone: a missing rank is gone (see :meth:`gone`), naming it and what to do.
        """
        looked = time.monotonic()
        while not self.store.check(list(keys)):
            self.tick()
            time.sleep(POLL_S)
            if time.monotonic() - looked < self._beat:
                continue
            looked = time.monotonic()
            missing = [rank for rank, key in enumerate(keys) if not self.store.check([key])]
            found = self.gone(missing)
            if found:
                reasons = "; ".join(reason for _, reason in found)
                raise RankGone(f"rank {self.rank} stopped waiting for the others while {what}: {reasons}; "
                               f"see that rank's output; {RESUME}", [rank for rank, _ in found])
        self.tick()
