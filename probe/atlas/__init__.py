"""The atlas: every unit of a model's layers with its synthetic images and its top dataset examples.

A thin distributed layer over :func:`probe.maximize` and :func:`probe.record`::

    from probe.atlas import build_atlas
    build_atlas("digits", layers=["conv1", "conv2"], dataset="zoo", out="runs/atlas-digits")

The same call in every process of ``torchrun --nproc_per_node=N -m probe atlas ...``
shares the work; a rerun resumes. Modules: :mod:`~probe.atlas.plan` (settings,
chunks), :mod:`~probe.atlas.distributed` (torch.distributed),
:mod:`~probe.atlas.data` and :mod:`~probe.atlas.examples` (the dataset pass),
:mod:`~probe.atlas.receptive` (receptive fields), :mod:`~probe.atlas.records`
(atomic files), :mod:`~probe.atlas.runner` (the run), :mod:`~probe.atlas.site`
(the figures, then :mod:`probe.gallery.atlas`).
"""

from probe.atlas.plan import AtlasSettings, Chunk, make_chunks
from probe.atlas.receptive import ReceptiveField, receptive_field
from probe.atlas.runner import AtlasSummary, atlas_layers, build_atlas

__all__ = ["build_atlas", "AtlasSummary", "AtlasSettings", "Chunk", "make_chunks", "atlas_layers",
           "ReceptiveField", "receptive_field"]
