"""``probe atlas``: every unit of a model with its synthetic images and dataset examples, as a static site."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import click

from probe.atlas.distributed import RESUME, describe, launched_by_torchrun
from probe.atlas.liveness import DEFAULT_TIMEOUT_S
from probe.atlas.runner import DEFAULT_DIVERSITY, AtlasSummary, build_atlas
from probe.cli.common import (
    ProbeCommand,
    complete_layer,
    invocation,
    list_option,
    model_load_options,
    model_options,
    note,
    parse_weights,
    progress_bar,
    shared,
    speed_options,
)
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.optimize import PRESETS
from probe.cli.types import OutFolder, count, finite


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


class AtlasCommand(ProbeCommand):
    """:class:`~probe.cli.common.ProbeCommand`, with every error one line, and in a run of several processes
    each line saying which rank speaks (``rank 1: ...``).

    An error ProbeCommand leaves as it is (the model's, torch's or cnn-probe's own, unforeseen) is worded as
    ``Type: message`` with what to do, not a traceback: a run of many processes would print one per rank.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            error.message = _rank_words() + error.message
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            raise click.ClickException(f"{_rank_words()}{describe(error)} (an error cnn-probe does not know; "
                                       f"please report it with the command line); {RESUME}") from None


def _rank_words() -> str:
    """``"rank 1: "`` in a worker of a run of several processes, else nothing."""
    if launched_by_torchrun() and os.environ.get("WORLD_SIZE", "1").strip() not in ("1", ""):
        return f"rank {os.environ['RANK']}: "  # as the environment says, even where it is refused for its values
    return ""


@click.command("atlas", cls=AtlasCommand,
               interrupted="interrupted (Ctrl-C); every finished chunk is saved: rerun the same command to resume")
@model_options(default="digits")
@list_option("--layers", "layers", default=["all"], metavar="all|NAME", shell_complete=complete_layer,
             help="Layers to map, dotted names; all = every convolution and block with a (C, H, W) output "
                  "(see 'probe layers MODEL').")
@click.option("--dataset", default="zoo", show_default=True, metavar="zoo|skimage|DIR",
              help="Images for the dataset examples: zoo = the embedded model's own data (train then test), "
                   "skimage = scikit-image's photos, DIR = a folder of images, flat or one subfolder per class.")
@click.option("--examples", type=count(1), default=9, show_default=True, metavar="K",
              help="Dataset examples per unit: the K images with the highest degree of activation, each cropped "
                   "to the receptive field around the map's maximum.")
@click.option("--per-unit", type=count(1), default=1, show_default=True, metavar="K",
              help="Synthetic images per unit; several are pushed apart by a diversity term.")
@click.option("--diversity", type=finite(min=0), default=None, metavar="W",
              help=f"Weight of the diversity term with --per-unit > 1 (default {DEFAULT_DIVERSITY:g}).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="robust", show_default=True,
              help="How the synthetic images are made (see 'probe maximize --help').")
@click.option("--steps", type=count(1), default=256, show_default=True, help="Optimization steps.")
@click.option("--lr", type=finite(min=0, min_open=True), default=None, help="Learning rate (default 0.05).")
@click.option("--chunk", type=count(1), default=16, show_default=True, metavar="N",
              help="Units per chunk: the work one process claims at a time, one batch, and the unit of resuming.")
@click.option("--batch", type=count(1), default=64, show_default=True, metavar="N",
              help="Dataset images per forward pass.")
@click.option("--limit", type=count(1), default=None, metavar="N",
              help="Use the first N dataset images (default: all): --limit 240.")
@click.option("--max-units", type=count(1), default=None, metavar="N",
              help="Map only the first N units of each layer (default: all): --max-units 8 for a quick look.")
@speed_options()
@shared
@click.option("--out", type=OutFolder(), default=None,
              help="Atlas folder. Default runs/atlas-<model>-<settings digest>. Rerunning the same command resumes "
                   "it; other settings in the same folder are refused.")
@click.option("--force", is_flag=True, help="Replace an atlas made with other settings in --out (only an atlas).")
@click.option("--nproc", type=count(1), default=None, metavar="N",
              help="Run N local processes through torchrun's launcher (torch.distributed.run --standalone); "
                   "default: this process alone (or the processes torchrun started): --nproc 2.")
@click.option("--timeout", type=finite(min=0, min_open=True), default=DEFAULT_TIMEOUT_S, show_default=True,
              metavar="SECONDS",
              help="Under torchrun: a process that makes no progress for this long (hung, or killed without a word) "
                   "ends the run; every process stops within about this long, with one line naming it. Every "
                   "optimization step and dataset batch is progress, so it only needs to exceed the slowest single "
                   "step (loading the model).")
@click.pass_context
def command(ctx: click.Context, model: str, weights: str, layers: list[str] | None, dataset: str, examples: int,
            per_unit: int, diversity: float | None, preset: str, steps: int, lr: float | None, chunk: int, batch: int,
            limit: int | None, max_units: int | None, precision: str, channels_last: bool, device: str, seed: int, out: Path | None,
            force: bool, nproc: int | None, timeout: float) -> None:
    """Map every unit of a model: its synthetic image(s) beside the dataset images that excite it most.

    For each unit (channel) of the chosen layers: synthetic images (gradient
    ascent, as 'probe maximize'), the top dataset examples from one pass over
    the dataset with the crop of the receptive field (measured, not guessed;
    after squeeze-excitation or attention, the box holding 95% of the
    gradient) around the strongest position, and figures: the synthetic
    image's degree of activation over the best example's (counted from the
    dataset median; above 1 = beats every dataset image), the spread of the K
    images, the histogram over the dataset; a unit whose image never moved is
    flagged. Writes a static site (index.html, one page per layer sortable by
    the figures, one per unit) and atlas.json.

    Work is split into chunks of units. Under torchrun the processes share
    them (each claims the next free chunk) and the dataset pass; every
    finished chunk is saved at once, so rerunning the same command after a
    crash or Ctrl-C renders only what is missing. A process that fails ends
    every process within a chunk, each with one line; one that hangs or is
    killed without a word, within --timeout.

    \b
    Examples:
      probe atlas --layers conv1,conv2                       digits, offline, about a minute on a CPU
      probe atlas --layers conv2 --per-unit 4 --steps 128    four different images per filter
      probe atlas --nproc 2 --layers conv1,conv2             two local processes (torchrun's launcher)
      torchrun --nproc_per_node=8 -m probe atlas --model resnet50 --dataset ~/imagenet/val
      torchrun --nnodes=2 --node_rank=0 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 \\
               --nproc_per_node=8 -m probe atlas --model resnet50 --dataset ~/imagenet/val --out /shared/atlas
    """
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
