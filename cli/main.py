"""The ``probe`` command group; each command is declared in a module of its own under :mod:`probe.cli.commands`,
imported when that command is run or asked for help, and does its work in ``probe.cli.<module>``, imported only
when it runs (:func:`probe.cli.common.work`)."""

from __future__ import annotations

import importlib
from typing import Any

import click

from probe import __version__
from probe.cli.interrupt import INTERRUPTED, Interrupted

COMMANDS: dict[str, tuple[str, str]] = {
    "layers": ("layers", "List the layers of MODEL (or --model MODEL) with output shapes, to choose a --layer."),
    "maximize": ("maximize", "Synthesize the images that maximize a layer's filters, neurons or classes."),
    "dream": ("dream", "Deep Dream: make the network exaggerate what it sees in IMAGE."),
    "style": ("style", "Paint CONTENT in the style of STYLE (Gatys et al.'s Gram-matrix style transfer)."),
    "activations": ("activations", "Show the feature maps the convolutions (or, with --all, every layer) compute for "
                                   "IMAGE, and the prediction."),
    "filters": ("filters", "Draw the kernels of a convolution layer: one image per filter."),
    "attribute": ("attribute", "Explain the prediction for IMAGE: heatmaps of the pixels that drove it."),
    "train": ("train", "Train the embedded zoo model NAME (digits, lenet5, xo, shapes) on the CPU."),
    "gallery": ("gallery_index", "Write FOLDER/index.html linking every gallery below FOLDER (default: runs)."),
    "atlas": ("atlas", "Map every unit of a model: its synthetic image(s) beside the dataset images that excite it "
                       "most."),
}
"""Each command -> its module under :mod:`probe.cli.commands` (its work's under :mod:`probe.cli`) and its summary,
the first sentence of its help (the listing of ``probe --help``; tests/test_startup.py checks each against the
command's own)."""


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is run, completed or asked for help.

    A command's module declares its options and help and imports no torch (its work imports torch and the rest
    of :mod:`probe`, seconds, once the command runs); ``probe --help`` lists the commands from :data:`COMMANDS`
    without importing any, and ``probe --version`` needs nothing but :data:`probe.__version__`. ``.commands``
    is still every command (imported on access), for scripts and tests that walk them. A Ctrl-C while a
    command's module is imported, or while the arguments are parsed, exits 130 with one line
    (:class:`Interrupted`) like one during the command, not click's ``Aborted!`` with exit code 1.
    """

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        self._lazy = dict(lazy)
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> dict[str, click.Command]:  # type: ignore[override]
        """Every command, name -> command (imports those not imported yet)."""
        for name in list(self._lazy):
            self._load(name)
        return self._loaded

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._loaded = dict(value)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Add ``cmd`` (as ``name``, default its own) without importing the lazy ones."""
        name = name or cmd.name
        self._lazy.pop(name or "", None)
        self._loaded[name or ""] = cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The names of every command, sorted, none imported."""
        return sorted({*self._loaded, *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command called ``cmd_name`` (its module imported now), or None."""
        if cmd_name in self._lazy:
            self._load(cmd_name)
        return self._loaded.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, from the summaries in :data:`COMMANDS` for the commands not imported yet."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self._loaded.get(name)
            if command is not None and command.hidden:
                continue
            summary = (command.get_short_help_str(limit) if command is not None
                       else click.Command(name, help=self._lazy[name][1]).get_short_help_str(limit))
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted(INTERRUPTED) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted(INTERRUPTED) from None

    def _load(self, name: str) -> None:
        module, _ = self._lazy.pop(name)
        self._loaded[name] = importlib.import_module(f"probe.cli.commands.{module}").command


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="probe")
def cli() -> None:
    """cnn-probe: see what a convolutional network learned.

    Models: the embedded zoo works offline (digits, lenet5, xo, shapes);
    torchvision names, timm:NAME, hf:NAME_OR_DIR, .onnx and TorchScript files
    and your own path/to/net.py:factory load with --model; pretrained weights
    download once, or run with --weights none / --weights FILE. Images: a
    file, skimage:NAME or a zoo sample (digits:3, shapes:star).

    The commands that make images write a gallery folder under runs/ (PNGs, a
    captioned contact sheet, index.html, manifest.json) and never overwrite
    one unless --force. Options that take several values take them either
    way: --layer a,b or --layer a --layer b. For scripts: --quiet prints only
    errors and the last line, --json the manifest's summary. Shell completion
    (bash): eval "$(_PROBE_COMPLETE=bash_source probe)".

    \b
    Every command, with an example (probe COMMAND --help for more):
      probe layers digits                         list layers and output shapes
      probe maximize --layer conv2                the images that excite conv2's 50 filters
      probe dream skimage:astronaut --model shapes          Deep Dream over a photo
      probe style skimage:astronaut skimage:coffee --model shapes   style transfer
      probe activations digits:3                  every conv layer's feature maps for one digit
      probe filters --model xo                    the learned kernels of the first conv layer
      probe attribute digits:0 --method all       which pixels made it a 0 (captum)
      probe atlas --layers conv1,conv2            every filter: its image, its top digits
      probe train digits --out runs/my-digits     retrain an embedded model (deterministic)
      probe gallery runs                          one index page over every run in runs/
    """

