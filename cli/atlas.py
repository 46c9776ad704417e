"""``probe atlas``: every unit of a model with its synthetic images and dataset examples, as a static site."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import click

from probe.atlas.runner import AtlasSummary, build_atlas
from probe.cli.common import invocation, model_load_options, note, parse_weights, progress_bar
from probe.errors import ProbeRuntimeError, ProbeUsageError


def _layers(names: list[str] | None) -> str | list[str]:
    """``--layers`` (repeated or comma-separated) -> ``"all"`` or the layer names."""
    return "all" if not names or names == ["all"] else names


def _worker_args(ctx: click.Context) -> list[str]:
    """The command line of this call as the user typed it, without ``--nproc``: what each torchrun worker runs."""
    words = shlex.split(invocation(ctx))[2:]  # drop "probe atlas"
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            kept.append(word)
    return kept


def _check_nproc(nproc: int) -> None:
    """Refuse more local processes than the machine has CPU cores or GPUs: each worker needs one, and
    torchrun would start them all (``--nproc 99999`` forks until the machine stops)."""
    import torch

    cores, gpus = os.cpu_count() or 1, torch.cuda.device_count()
    if nproc > max(cores, gpus):
        raise ProbeUsageError(f"{nproc} processes is more than this machine's {cores} CPU core(s) and {gpus} GPU(s); "
                              f"give at most {max(cores, gpus)} (one process per GPU, or per core on the CPU)",
                              param="nproc")


def _launch(ctx: click.Context, nproc: int) -> None:
    """Run this command in ``nproc`` local processes through torchrun's own launcher (``torch.distributed.run``).

    The launcher runs in this process, so a failed worker ends in one line here
    (each worker has printed its own error) instead of the launcher's traceback (a usage error, exit 2,
    in none: the workers' lines said what to change, and "rerun to resume" would not help),
    and Ctrl-C, which reaches the launcher as torch's ``SignalException``, in the
    command's "interrupted" line and exit code 130.
    """
    import logging
    import signal

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    click.echo(f"launching {nproc} processes: torchrun --standalone --nproc_per_node={nproc} -m probe atlas ...",
               err=True)
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc_per_node={nproc}", "-m", "probe", "atlas", *_worker_args(ctx)]
    )
    # its "failed (exitcode: N)" log, failure table and "Received 2 death signal" repeat what workers said; each
    # of its modules' loggers has a level of its own, so the parent's does not silence them
    elastic = [logger for name, logger in logging.Logger.manager.loggerDict.items()
               if name.startswith("torch.distributed.elastic") and isinstance(logger, logging.Logger)]
    levels = [logger.level for logger in elastic]
    for logger in elastic:
        logger.setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as error:
        code = error.get_first_failure()[1].exitcode
        if code == 2:  # a usage error, which every worker has said in its line: a rerun would say it again
            raise click.exceptions.Exit(2) from None
        raise ProbeRuntimeError(f"a worker process failed (exit {code}); rerun the same command to resume: "
                                "finished chunks are kept") from None
    except SignalException as error:
        if error.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise ProbeRuntimeError(f"stopped by {error.sigval.name}; rerun the same command to resume: finished "
                                "chunks are kept") from None
    finally:
        for logger, level in zip(elastic, levels):
            logger.setLevel(level)


def run(ctx: click.Context, model: str, weights: str, layers: list[str] | None, dataset: str, examples: int,
        per_unit: int, diversity: float | None, preset: str, steps: int, lr: float | None, chunk: int, batch: int,
        limit: int | None, max_units: int | None, precision: str, channels_last: bool, device: str, seed: int, out: Path | None,
        force: bool, nproc: int | None, timeout: float) -> None:
    """``probe atlas``'s work, on the options click parsed (see :mod:`probe.cli.commands.atlas`)."""
    if nproc is not None and nproc > 1:
        _check_nproc(nproc)
        _launch(ctx, nproc)
        return
    bars: dict[str, Any] = {}
    lead = [True]

    def started(summary: AtlasSummary, missing: int) -> None:
        lead[0] = summary.rank == 0
        if lead[0]:
            s = summary.settings
            click.echo(f"atlas of {s.model} ({s.weights} weights): {len(s.layers)} layer(s), {summary.units} units "
                       f"in {summary.total} chunks; {summary.skipped} done before, {missing} to render on "
                       f"{summary.world} process(es); {s.steps} steps, preset {s.preset}", err=True)

    def progress(stage: str, done: int, total: int) -> None:
        if not lead[0] and stage == "render":
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = progress_bar(total, "dataset images" if stage == "dataset" else "chunks")
        bar.update(done - bar.n)

    try:
        summary = build_atlas(
            model, out=out, weights=parse_weights(weights), layers=_layers(layers), dataset=dataset,
            examples=examples, per_unit=per_unit, diversity=diversity, steps=steps, preset=preset, lr=lr,
            chunk=chunk, batch=batch, limit=limit, max_units=max_units, seed=seed, device=device, precision=precision,
            channels_last=channels_last, force=force, progress=progress, on_start=started,
            model_options=model_load_options(), timeout=timeout,
        )  # fmt: skip
    finally:
        for bar in bars.values():
            bar.close()
    if summary.rank == 0:
        rate = ""
        if summary.rendered and summary.seconds > 0:
            rate = f" ({len(summary.rendered)} on this process in {summary.seconds:.1f}s)"
        click.echo(f"atlas: {summary.total - summary.skipped} chunk(s) rendered now, {summary.skipped} kept{rate}")
        click.echo(f"site: {summary.site}")
        if summary.old_crops is not None:
            note(f"note: this atlas's dataset examples were cropped by an older cnn-probe (to the whole receptive "
                 f"field); they were measured and cropped again ({summary.old_crops} old crop file(s) removed), "
                 "the synthetic images kept")
        if summary.unmoved:
            shown = ", ".join(summary.unmoved[:8]) + (", ..." if len(summary.unmoved) > 8 else "")
            note(f"note: {len(summary.unmoved)} unit(s) have a synthetic image that never changed from its start "
                 f"({shown}), marked 'never moved' on their pages: no gradient reached it (a unit dead on its start "
                 "image, or constant for these weights: load trained weights, or try another --seed), or --lr is "
                 "too small")
