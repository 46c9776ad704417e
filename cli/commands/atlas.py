"""``probe atlas``: its arguments, options and help, free of torch; its work is :mod:`probe.cli.atlas`,
imported when it runs."""

from __future__ import annotations

import os
from typing import Any

import click

from probe.choices import ATLAS_DIVERSITY, ATLAS_TIMEOUT_S, PRESETS
from probe.cli.common import ProbeCommand, complete_layer, list_option, model_options, shared, speed_options, work
from probe.cli.types import OutFolder, count, finite


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
            from probe.atlas.distributed import RESUME, describe  # torch: imported by the work already

            raise click.ClickException(f"{_rank_words()}{describe(error)} (an error cnn-probe does not know; "
                                       f"please report it with the command line); {RESUME}") from None


def _rank_words() -> str:
    """``"rank 1: "`` in a worker of a run of several processes, else nothing (without importing torch then:
    a Ctrl-C while the work module is still importing is worded here too)."""
    if os.environ.get("WORLD_SIZE", "1").strip() in ("1", ""):
        return ""
    from probe.atlas.distributed import launched_by_torchrun

    if launched_by_torchrun():
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
              help=f"Weight of the diversity term with --per-unit > 1 (default {ATLAS_DIVERSITY:g}).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="robust", show_default=True,
              help="How the synthetic images are made (see 'probe maximize --help').")
@click.option("--steps", type=count(1), default=256, show_default=True, help="Optimization steps.")
@click.option("--lr", type=finite(min=0, min_open=True), default=None,
              help=f"Learning rate (default {PRESETS['robust'].lr}).")
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
@click.option("--timeout", type=finite(min=0, min_open=True), default=ATLAS_TIMEOUT_S, show_default=True,
              metavar="SECONDS",
              help="Under torchrun: a process that makes no progress for this long (hung, or killed without a word) "
                   "ends the run; every process stops within about this long, with one line naming it. Every "
                   "optimization step and dataset batch is progress, so it only needs to exceed the slowest single "
                   "step (loading the model).")
@click.pass_context
def command(ctx: click.Context, **options: Any) -> None:
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
    work("atlas", ctx, **options)
