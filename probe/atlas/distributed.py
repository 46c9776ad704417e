"""torch.distributed as torchrun expects a worker to use it, and nothing of our own beyond that.

Launched by torchrun (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` in
the environment), :func:`join` initializes the default process group once
(NCCL on CUDA, gloo on the CPU) and opens a client of the same TCPStore the
rendezvous runs, under a prefix of this run, for the shared chunk counter.
Without those variables it is a single process and every call is local.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from probe.errors import ProbeError, ProbeRuntimeError, ProbeUsageError

__all__ = ["Group", "join", "launched_by_torchrun", "outcome", "unwrap"]

T = TypeVar("T")
R = TypeVar("R")


def outcome(work: Callable[[], T]) -> tuple[Any, ...]:
    """``("ok", value)`` or, for a cnn-probe error, ``("error", kind, message, param)``: picklable, to send to the other ranks."""
    try:
        return ("ok", work())
    except ProbeError as error:
        return ("error", type(error).__name__, str(error), getattr(error, "param", None))


def unwrap(result: tuple[Any, ...]) -> Any:
    """The value of an :func:`outcome`, or its error raised again (a usage error keeps its option)."""
    if result[0] == "ok":
        return result[1]
    kind, message, param = result[1:]
    raise ProbeUsageError(message, param=param) if kind == "ProbeUsageError" else ProbeRuntimeError(message)

TIMEOUT = timedelta(minutes=30)


def launched_by_torchrun() -> bool:
    """Whether the environment names a process group (torchrun sets these for every worker)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


@dataclass
class Group:
    """This process's place in the run.

    Attributes:
        rank: 0..world-1 (0 alone).
        world: number of processes.
        local_rank: the process's index on its machine (picks its GPU).
        store: a PrefixStore of the rendezvous TCPStore, private to this run (None alone).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    store: Any = None

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world > 1

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank (picklable)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank (picklable, on the CPU)."""
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def share(self, items: Sequence[T], work: Callable[[T], R]) -> list[R]:
        """``[work(item) for item in items]`` on every rank, each rank computing every ``world``-th item.

        The items are dealt round-robin (rank ``r`` takes ``items[r::world]``), the
        results all-gathered in item order, so the list is the one a single
        process computes when ``work`` depends on its item alone. A cnn-probe
        error in any item is raised on every rank (the first in item order).
        """
        mine = [outcome(lambda item=item: work(item)) for item in items[self.rank::self.world]]
        parts = self.gather(mine)
        results = [parts[number % self.world][number // self.world] for number in range(len(items))]
        return [unwrap(result) for result in results]

    def claim(self, count: int) -> Iterator[int]:
        """Indices ``0..count-1``, each to exactly one rank, first come first served (``store.add``)."""
        if not self.distributed:
            yield from range(count)
            return
        while True:
            index = int(self.store.add("next", 1)) - 1
            if index >= count:
                return
            yield index


def _device_for(device: str, local_rank: int) -> str:
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu" if device == "auto" else device


@contextmanager
def join(device: str = "auto") -> Iterator[tuple[Group, str]]:
    """Join the torchrun process group if launched by torchrun, else run alone; leave it on exit.

    Args:
        device: ``"auto"`` (each rank its own GPU, ``cuda:LOCAL_RANK``, else the
            CPU), ``"cpu"``, ``"cuda"`` (the same as auto on a GPU machine) or
            ``"cuda:N"`` (kept as given).

    Yields:
        ``(group, device)``: the group and the device this rank works on.

    Raises:
        ProbeRuntimeError: the process group could not be joined.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        yield Group(), _device_for(device, 0)
        return
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = _device_for(device, local_rank)
    cuda = chosen.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(chosen))
    owned = not dist.is_initialized()
    if owned:
        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT,
                                    **({"device_id": torch.device(chosen)} if cuda else {}))
        except (RuntimeError, ValueError) as error:
            raise ProbeRuntimeError(f"cannot join the torchrun process group: {error}") from None
    try:
        client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                               timeout=TIMEOUT, wait_for_workers=False)
        group = Group(rank, world, local_rank)
        run = group.broadcast(uuid.uuid4().hex if rank == 0 else None)
        group.store = dist.PrefixStore(f"probe-atlas/{run}/", client)
        yield group, chosen
        if owned:  # leave together: gloo aborts a rank ("terminate called without an active exception") whose
            group.barrier()  # peer tears its connections down while it still holds them
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()
