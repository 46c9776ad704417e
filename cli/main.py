"""The ``probe`` command group; each command lives in a module of its own."""

from __future__ import annotations

import click

from probe import __version__
from probe.cli import activations, atlas, attribute, dream, filters, gallery_index, layers, maximize, style, train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


for module in (layers, maximize, dream, style, activations, filters, attribute, train, gallery_index, atlas):
    cli.add_command(module.command)
