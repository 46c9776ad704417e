"""The ``probe`` command group; each command lives in a module of its own."""

from __future__ import annotations

import click

from probe import __version__
from probe.cli import activations, atlas, attribute, dream, filters, gallery_index, layers, maximize, style, train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="probe")
def cli() -> None:
    """cnn-probe: see what a convolutional network learned.

    Every command writes a gallery folder (PNGs, a captioned contact sheet,
    index.html, manifest.json). Models: the embedded zoo works offline
    (digits, lenet5, xo, shapes); torchvision models download their
    pretrained weights once, or run with --weights none / --weights FILE.

    Options that take several values take them either way: --layer a,b or
    --layer a --layer b. For scripts: --quiet prints only errors and the last
    line, --json the manifest's summary. Shell completion (bash):
    eval "$(_PROBE_COMPLETE=bash_source probe)".

    \b
    Start here:
      probe layers digits                  list layers and output shapes
      probe maximize --layer conv2         the images that excite conv2's 50 filters
      probe activations digits:3           every conv layer's feature maps for one digit
      probe attribute digits:0 --method all  which pixels made it a 0 (captum)
      probe style skimage:astronaut skimage:coffee --model shapes
    """


for module in (layers, maximize, dream, style, activations, filters, attribute, train, gallery_index, atlas):
    cli.add_command(module.command)
