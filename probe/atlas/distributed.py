"""torch.distributed as torchrun expects a worker to use it, and a rule that failures agree across ranks.

Launched by torchrun (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` in
the environment), :func:`join` initializes the default process group once
(NCCL on CUDA, gloo on the CPU) and opens a client of the same TCPStore the
rendezvous runs, under a prefix of this run, for the shared chunk counter.
Without those variables it is a single process and every call is local.

**Failures agree.** A rank that raises (a bad layer, out of memory, a full
disk, Ctrl-C on that rank alone) used to leave the others blocked in their
next collective until its timeout (30 minutes; for ever on NCCL, which does not
notice a peer that left). Now every collective of :class:`Group` begins with
the same small exchange of each rank's status (None, or the failure of a rank
that raised) through the run's store, and :func:`join` answers an error in its block with that status
(:meth:`Group.fail`): the other ranks meet it at their next collective and raise
:class:`PeerFailure` (rank number, cause, what to do; a usage error stays a
usage error naming its option), the failing rank raises its own error. A rank
busy with local work (rendering its chunks, its share of the dataset) learns of
the failure sooner: the failing rank also sets a key in the run's store, which
:meth:`Group.check` reads between chunks and batches. A rank that hangs or is killed without a word never sends a status: every rank beats in the
store while it makes progress (:mod:`probe.atlas.liveness`), so the others end within about ``timeout``
seconds (``--timeout``, :data:`~probe.atlas.liveness.DEFAULT_TIMEOUT_S` by default) with one line naming
it, and a rank stuck for that long ends itself. An error of the process group itself is one
:class:`~probe.errors.ProbeRuntimeError` line too. Every finished chunk is already on disk when any of this
happens, so a rerun resumes.
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from probe.atlas.liveness import DEFAULT_TIMEOUT_S, RESUME, Liveness, RankGone
from probe.errors import ProbeError, ProbeRuntimeError, ProbeUsageError
from probe.forward import ModelInputError
from probe.memory import is_out_of_memory
from probe.runtime import OUT_OF_MEMORY

__all__ = ["Group", "PeerFailure", "join", "leave_together", "launched_by_torchrun", "describe", "RESUME", "STOP_KEY",
           "TIMEOUT", "DEFAULT_TIMEOUT_S", "check_timeout"]

T = TypeVar("T")
R = TypeVar("R")

TIMEOUT = timedelta(minutes=30)
"""torch.distributed's default timeout of a collective, which the ranks' heartbeats now make short
(:mod:`probe.atlas.liveness`)."""
MIN_GROUP_TIMEOUT_S = 60.0
"""The process group's and store's own timeout is at least this: joining waits for every rank's start (its
imports), and a collective begins only once every rank has arrived, so no shorter one is needed."""
LEFT_KEY = "left"
"""The store counter of ranks done with every collective (see :func:`leave_together`)."""
LEAVE_AFTER_FAILURE_S = 10.0
"""How long a failed run's rank waits for the others to count out before it leaves (a killed one never does)."""
STOP_KEY = "failed"
"""The store key a failing rank sets (to its rank number): the others stop at their next :meth:`Group.check`."""

Failure = tuple[int, str, str, "str | None"]
"""``(rank, kind, message, param)``: kind ``"usage"``, ``"input"`` (the model refused its input: a usage error
the CLI words as one about the input size), ``"interrupt"`` or ``"runtime"``; picklable."""


def describe(error: BaseException) -> str:
    """One line for any error: a cnn-probe error's message; ``OSError``'s reason and file; for out of memory,
    what to change; else ``Type: first line of the message``."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGINT)"
    if isinstance(error, ProbeError):
        return text or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {str(error.filename)!r}" if error.filename is not None else error.strerror
    if is_out_of_memory(error):
        return f"out of memory ({type(error).__name__}: {text[:200]}); {OUT_OF_MEMORY}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class PeerFailure(ProbeRuntimeError):
    """Another rank of the run failed; raised on every rank that did not (the failing rank raises its own error).

    Attributes:
        rank: the first rank that failed.
        kind: ``"runtime"`` or ``"interrupt"`` (a usage error is raised as :class:`~probe.errors.ProbeUsageError`).
    """

    def __init__(self, message: str, *, rank: int, kind: str) -> None:
        super().__init__(message)
        self.rank = rank
        self.kind = kind


def _failure(rank: int, error: BaseException) -> Failure:
    kind = ("input" if isinstance(error, ModelInputError) else "usage" if isinstance(error, ProbeUsageError)
            else "interrupt" if isinstance(error, KeyboardInterrupt) else "runtime")
    return (rank, kind, describe(error), getattr(error, "param", None))


def _peer_error(failures: Sequence[Failure]) -> ProbeError:
    """The error every rank that did not fail raises: the first failed rank's cause, the others' numbers."""
    rank, kind, message, param = failures[0]
    others = f" (rank(s) {', '.join(str(f[0]) for f in failures[1:])} failed too)" if len(failures) > 1 else ""
    if kind == "usage":
        return ProbeUsageError(f"{message} (found by rank {rank}{others})", param=param)
    if kind == "input":
        return ModelInputError(f"{message} (found by rank {rank}{others})", (), PeerFailure(message, rank=rank, kind=kind))
    if kind == "interrupt":
        return PeerFailure(f"rank {rank} was interrupted{others}; {RESUME}", rank=rank, kind=kind)
    return PeerFailure(f"rank {rank} failed{others}: {message}; {RESUME}", rank=rank, kind=kind)


def launched_by_torchrun() -> bool:
    """Whether the environment names a process group (torchrun sets these for every worker)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def torchrun_env() -> tuple[int, int, int, int]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_PORT)`` from the environment torchrun sets, checked before any
    connection is tried: a ``RANK`` at or past ``WORLD_SIZE`` waits at the rendezvous for ever, in a C call
    that not even SIGTERM interrupts, and ``WORLD_SIZE=abc`` raised a bare ``ValueError``.

    Raises:
        ProbeRuntimeError: a variable is not a whole number in its range, naming it and what to do.
    """
    def read(name: str, low: int, high: int | None, default: str | None = None) -> int:
        text = os.environ.get(name, default)
        try:
            value = int(str(text).strip())
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise ProbeRuntimeError(
                f"the environment variable {name}={text!r} is not a whole number {bound}; launch the atlas with "
                "torchrun (it sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT), or unset them to run "
                "as one process")
        return value

    world = read("WORLD_SIZE", 1, None)
    return (read("RANK", 0, world - 1), world, read("LOCAL_RANK", 0, None, "0"), read("MASTER_PORT", 1, 65535))


@dataclass
class Group:
    """This process's place in the run; its collectives agree on failures (see the module docstring).

    Every collective method (:meth:`barrier`, :meth:`broadcast`, :meth:`gather`, :meth:`share`) is called by
    every rank in the same order. Each raises on every rank when any rank failed: :class:`PeerFailure` or a
    usage error from the failed rank, or :class:`~probe.errors.ProbeRuntimeError` when the process group
    itself failed (a rank killed, a timeout).

    Attributes:
        rank: 0..world-1 (0 alone).
        world: number of processes.
        local_rank: the process's index on its machine (picks its GPU).
        store: a PrefixStore of the rendezvous TCPStore, private to this run (None alone).
        settled: this rank already knows the run failed (it met a failure, or the process group broke): it
            takes part in no more collectives.
        timeout: seconds without progress after which a rank counts as hung or gone (``--timeout``).
        liveness: the heartbeat and store-based waiting (:mod:`probe.atlas.liveness`); None alone, or before
            the run's store is known (the statuses then go through an all-gather).
        gone: the ranks found hung or gone (no rank waits for them on the way out).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    store: Any = None
    settled: bool = field(default=False, repr=False)
    timeout: float = DEFAULT_TIMEOUT_S
    liveness: Liveness | None = field(default=None, repr=False)
    gone: set[int] = field(default_factory=set, repr=False)
    _meetings: int = field(default=0, repr=False)
    _checked: float = field(default=0.0, repr=False)

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world > 1

    def _collective(self, what: str, run: Callable[[], T]) -> T:
        """``run()``, a torch.distributed call; its own failure (a peer gone, a timeout) as one line."""
        try:
            return run()
        except BaseException as error:
            self.settled = True
            if isinstance(error, (RuntimeError, ValueError)) and not isinstance(error, ProbeError):
                raise ProbeRuntimeError(
                    f"rank {self.rank} lost the other processes while {what} ({describe(error)[:300]}): one "
                    f"stopped without a word (killed, out of memory, its machine down; the run's store is held by "
                    f"rank 0 or torchrun's agent) or hung for longer than the timeout ({self.timeout:g} s); "
                    f"see its own output; {RESUME}") from None
            if isinstance(error, RankGone):
                self.gone.update(error.ranks)
            raise

    def _statuses(self, what: str, failure: Failure | None) -> list[Failure]:
        """Every rank's status, exchanged; the failures among them, in rank order.

        Through the run's store when there is one: each rank sets its key of this meeting (every rank
        counts its meetings alike) and waits for the others' while reading their heartbeats, so a hung or
        vanished rank ends the wait within the timeout, named (:meth:`Liveness.wait`). Else one small
        all-gather.
        """
        if self.liveness is None:
            out: list[Failure | None] = [None] * self.world
            self._collective(what, lambda: dist.all_gather_object(out, failure))
            return [status for status in out if status is not None]
        self._meetings += 1
        keys = [f"meet/{self._meetings}/{rank}" for rank in range(self.world)]
        liveness = self.liveness

        def exchange() -> list[Failure | None]:
            self.store.set(keys[self.rank], pickle.dumps(failure))
            liveness.wait(keys, what)
            return [pickle.loads(self.store.get(key)) for key in keys]

        return [status for status in self._collective(what, exchange) if status is not None]

    def _agree(self, what: str) -> None:
        """Before each collective: raise on every rank if a rank failed (it sent its failure instead)."""
        if not self.distributed:
            return
        failures = self._statuses(what, None)
        if failures:
            self.settled = True
            raise _peer_error(failures)

    def fail(self, error: BaseException) -> None:
        """Tell the other ranks that this one failed with ``error`` (call it once, then raise ``error``).

        Sets :data:`STOP_KEY` in the store (the others stop at their next :meth:`check`), then meets the
        others' next collective with the failure. Nothing when alone, or when this rank already knows the
        run failed (its ``error`` came from a collective).
        """
        if not self.distributed or self.settled:
            return
        self.settled = True
        try:
            self.store.set(STOP_KEY, str(self.rank))
            self._statuses("telling them", _failure(self.rank, error))
        except Exception:  # the others are gone: this rank's own error is still the one to report
            pass

    def check(self) -> None:
        """Raise the failure of another rank now if one asked the run to stop (a store read, no collective).

        Called between pieces of local work (chunks, dataset batches) so a rank learns of a failure
        without finishing its share first.
        """
        if not self.distributed or self.settled:
            return
        stopped = self._collective("reading the run's store", lambda: self.store.check([STOP_KEY]))
        self._checked = time.monotonic()  # tick() need not read it again within the second
        if stopped:
            self._agree("stopping")  # the failing rank waits in fail(): this meets it and raises its failure
            self.settled = True
            raise ProbeRuntimeError(f"another rank asked the run to stop; {RESUME}")

    def tick(self) -> None:
        """Mark progress (a step of local work: see :mod:`probe.atlas.liveness`) and, at most once a second,
        :meth:`check` whether another rank asked the run to stop."""
        if self.liveness is None or self.settled:
            return
        self.liveness.tick()
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            self.check()

    def leave(self, patience: float | None = None) -> None:
        """Wait, up to ``patience`` seconds (default the timeout), until every rank not found gone has returned
        from its last collective (:func:`leave_together` on the run's store); never raises."""
        if self.distributed and self.store is not None:
            leave_together(self.store, self.world - len(self.gone), self.timeout if patience is None else patience)

    def barrier(self, what: str = "waiting for the others") -> None:
        """Wait for every rank (the status exchange is itself a barrier)."""
        self._agree(what)

    def broadcast(self, value: Any, what: str = "sharing rank 0's result") -> Any:
        """Rank 0's ``value``, on every rank (picklable)."""
        if not self.distributed:
            return value
        self._agree(what)
        box = [value]
        self._collective(what, lambda: dist.broadcast_object_list(box, src=0))
        return box[0]

    def gather(self, value: Any, what: str = "gathering the ranks' results") -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank (picklable, on the CPU)."""
        if not self.distributed:
            return [value]
        self._agree(what)
        out: list[Any] = [None] * self.world
        self._collective(what, lambda: dist.all_gather_object(out, value))
        return out

    def share(self, items: Sequence[T], work: Callable[[T], R], what: str = "sharing work") -> list[R]:
        """``[work(item) for item in items]`` on every rank, each rank computing every ``world``-th item.

        The items are dealt round-robin (rank ``r`` takes ``items[r::world]``), the
        results all-gathered in item order, so the list is the one a single
        process computes when ``work`` depends on its item alone. An error of
        ``work`` on one rank is raised there and reaches the others at this gather.
        """
        mine = []
        for item in items[self.rank::self.world]:
            self.check()
            self.tick()
            mine.append(work(item))
        parts = self.gather(mine, what)
        return [parts[number % self.world][number // self.world] for number in range(len(items))]

    def claim(self, count: int) -> Iterator[int]:
        """Indices ``0..count-1``, each to exactly one rank, first come first served (``store.add``); stops
        with the failure of another rank (:meth:`check` before each claim)."""
        if not self.distributed:
            yield from range(count)
            return
        while True:
            self.check()
            self.tick()
            index = int(self._collective("claiming a chunk", lambda: self.store.add("next", 1))) - 1
            if index >= count:
                return
            yield index


def leave_together(store: Any, world: int, patience: float) -> None:
    """Count this rank out in ``store`` and wait, up to ``patience`` seconds, until all ``world`` ranks have.

    Call it after a rank's last collective and before ``destroy_process_group``. gloo aborts a rank
    ("terminate called without an active exception", exit -6) whose peer destroys the process group, tearing
    its connections down, while the rank is still finishing the collective before, also on the way out of a
    failure; a collective cannot tell (it runs on those connections), the store can. Never raises: a store
    that is gone (its host rank left first, after every rank counted out) or a peer that never comes (killed)
    ends the wait.
    """
    try:
        store.add(LEFT_KEY, 1)
        deadline = time.monotonic() + patience
        while int(store.add(LEFT_KEY, 0)) < world and time.monotonic() < deadline:
            time.sleep(0.005)
    except Exception:  # the store's host is gone: nobody is left to wait for
        pass


def _device_for(device: str, local_rank: int) -> str:
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu" if device == "auto" else device


@contextmanager
def join(device: str = "auto", timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[tuple[Group, str]]:
    """Join the torchrun process group if launched by torchrun, else run alone; leave it on exit.

    An error in the block is told to the other ranks (:meth:`Group.fail`) before it propagates, so they
    stop too (see the module docstring).

    Args:
        device: ``"auto"`` (each rank its own GPU, ``cuda:LOCAL_RANK``, else the
            CPU), ``"cpu"``, ``"cuda"`` (the same as auto on a GPU machine) or
            ``"cuda:N"`` (kept as given).
        timeout: seconds without progress after which a rank counts as hung or gone: every rank then ends
            within about that long, naming it (default :data:`~probe.atlas.liveness.DEFAULT_TIMEOUT_S`;
            :mod:`probe.atlas.liveness`).

    Yields:
        ``(group, device)``: the group and the device this rank works on.

    Raises:
        ProbeRuntimeError: the process group could not be joined.
    """
    timeout = check_timeout(timeout)
    if not launched_by_torchrun():
        yield Group(timeout=timeout), _device_for(device, 0)
        return
    rank, world, local_rank, port = torchrun_env()
    if world == 1:
        yield Group(timeout=timeout), _device_for(device, 0)
        return
    chosen = _device_for(device, local_rank)
    cuda = chosen.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(chosen))
    owned = not dist.is_initialized()
    if owned:
        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=_group_timeout(timeout),
                                    **({"device_id": torch.device(chosen)} if cuda else {}))
        except (RuntimeError, ValueError) as error:
            raise ProbeRuntimeError(f"cannot join the torchrun process group: {error}") from None
    group = Group(rank, world, local_rank, timeout=timeout)
    try:
        client = group._collective("joining the run's store", lambda: dist.TCPStore(
            os.environ["MASTER_ADDR"], port, is_master=False,
            timeout=_group_timeout(timeout), wait_for_workers=False))
        run = group.broadcast(uuid.uuid4().hex if rank == 0 else None, "starting")  # an all-gather: no store yet
        group.store = dist.PrefixStore(f"probe-atlas/{run}/", client)
        group.liveness = Liveness(group.store, rank, world, timeout, STOP_KEY).start()
        try:
            yield group, chosen
        except BaseException as error:
            group.fail(error)
            if owned:
                group.leave(patience=LEAVE_AFTER_FAILURE_S)  # the others are on their way out too
            raise
        if owned:
            group.barrier("leaving")
            group.leave()
    finally:
        if group.liveness is not None:
            group.liveness.stop()
        if owned and dist.is_initialized():
            dist.destroy_process_group()


def check_timeout(timeout: float) -> float:
    """``timeout`` as positive finite seconds, or a usage error naming ``--timeout``."""
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = float("nan")
    if not (0 < value < float("inf")):
        raise ProbeUsageError(f"the timeout must be a positive number of seconds; got {timeout!r}", param="timeout")
    return value


def _group_timeout(timeout: float) -> timedelta:
    """The process group's and store's own timeout: ``timeout``, at least :data:`MIN_GROUP_TIMEOUT_S`."""
    return timedelta(seconds=max(timeout, MIN_GROUP_TIMEOUT_S))
