"""The atlas run: one dataset pass, then the synthetic images chunk by chunk, then the site.

Each stage is resumable; every rank runs the same function (torchrun starts
them), rank 0 alone writes the shared files::

    OUT/atlas-run.json           the settings and their digest (written first)
    OUT/records/examples.json    the merged dataset pass (after its crops)
    OUT/records/<chunk>.json     one finished chunk (after its images)
    OUT/images/*.png             synthetic images (-s0, -s1...) and example crops (x<image>-<box>, shared by units)
    OUT/index.html, layer-*.html, unit pages, atlas.json    the site (rank 0, at the end)

1. **Settings.** Rank 0 checks ``OUT``: a new or empty folder is started, an
   atlas with the same digest is resumed, any other content is refused.
2. **Dataset pass.** The dataset's fixed batches are dealt round-robin to the
   ranks; the per-unit top-k lists and histograms are gathered and merged on
   every rank; the ranks share the receptive fields' measuring; every rank
   writes the crops of its share of the dataset's images, then, once all have,
   rank 0 the record.
3. **Chunks.** Rank 0 lists the chunks without a record and broadcasts the
   list; ranks claim them one at a time with ``store.add`` (fast ranks take
   more). Every image draws from its own stream keyed by (seed, layer, unit,
   copy) (:mod:`probe.streams`), so a unit's images are the same on any rank,
   in a chunk of any size, and as ``probe maximize`` renders that unit alone.
4. **Site.** After a barrier, rank 0 assembles ``atlas.json`` and the pages.

An error on any rank ends every rank at its next collective, chunk or dataset
batch, each with one line (:mod:`probe.atlas.distributed`); what was finished is on disk.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe import __version__
from probe import objectives as O
from probe.atlas.data import AtlasData, open_dataset
from probe.atlas.distributed import Group, join
from probe.atlas.liveness import DEFAULT_TIMEOUT_S
from probe.choices import ATLAS_DIVERSITY as DEFAULT_DIVERSITY  # torch-free: the command's --diversity says it
from probe.atlas.examples import UnitExamples, batches_of, dataset_pass, merge_passes
from probe.atlas.plan import AtlasSettings, Chunk, file_stem, make_chunks
from probe.atlas.receptive import POSITIONS_PER_PASS, ReceptiveField, measure_fields, receptive_field
from probe.atlas.records import png_bytes, read_json, remove_partial, write_bytes, write_json, write_png
from probe.atlas.writer import Writer
from probe.chunkstore import weights_digest
from probe.errors import ProbeRuntimeError, ProbeUsageError, unknown_name
from probe.folderlock import lock_folder, release
from probe.gallery import slug
from probe.gallery.files import followed, is_temporary
from probe.hooks import layers as list_layers
from probe.images import to_pil
from probe.leaves import is_leaf
from probe.memory import check_results_fit, optimization_text
from probe.models import LoadedModel, load_model
from probe.optimize import maximize, plan_memory
from probe.runtime import with_gradients

__all__ = ["AtlasSummary", "Progress", "build_atlas", "atlas_layers", "RUN_FILE", "DEFAULT_DIVERSITY"]

RUN_FILE = "atlas-run.json"
CROPS = 2
"""How the examples record's crops are cut, recorded in it: 2 = an irregular layer's effective box (the 95% of
the gradient). A record without it (an older cnn-probe's) cut every crop to the gradient's whole support:
its dataset stage is done again, the chunks kept (:func:`_examples_stage`)."""
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage ``"dataset"`` (images) or ``"render"`` (chunks)."""


@dataclass
class AtlasSummary:
    """What :func:`build_atlas` did on this rank.

    Attributes:
        folder: the atlas folder, as the user named it (a link to it stays the link).
        rank, world: this process and the number of processes.
        settings: the atlas's settings.
        rendered: chunks this rank rendered now.
        skipped: chunks already done when this run began (all ranks).
        total: chunks of the atlas.
        units: units of the atlas.
        seconds: wall time of this rank's rendering stage.
        site: ``index.html`` (rank 0; None elsewhere).
        dataset_reused: whether the dataset pass came from an earlier run.
        old_crops: None, or how many crop files an older cnn-probe cut to the whole field were removed when
            the dataset stage of the resumed atlas was done again (:data:`CROPS`).
        unmoved: ``"layer:unit"`` of each unit with a synthetic image that never moved from its start
            (rank 0; see :func:`_render_chunk`).
    """

    folder: Path
    rank: int
    world: int
    settings: AtlasSettings
    rendered: list[str] = field(default_factory=list)
    skipped: int = 0
    total: int = 0
    units: int = 0
    seconds: float = 0.0
    site: Path | None = None
    dataset_reused: bool = False
    old_crops: int | None = None
    unmoved: list[str] = field(default_factory=list)


def atlas_layers(loaded: LoadedModel, layers: str | Sequence[str]) -> list[tuple[str, int]]:
    """``[(layer, channels)]`` for ``layers``: names, or ``"all"`` = every convolution and block with a map
    that runs once per forward pass.

    A map is a ``(C, H, W)`` output or tokens (ViT's ``(L, C)``, read as ``C``
    units over ``L`` positions; channels-last outputs count by their channels,
    :mod:`probe.layout`). A block is a module with children, other than an ``nn.Sequential`` (whose
    output is its last child's, already in the list: ResNet's ``layer1`` is
    ``layer1.1``).

    Raises:
        ProbeUsageError: an unknown layer (with the closest name), one without a map, or one that runs several
            times per forward pass.
    """
    rows = list_layers(loaded.module, loaded.input_shape)
    maps = {row.name: row for row in rows if row.batched and row.output_shape is not None
            and len(row.output_shape) in (2, 3) and row.channels is not None}
    modules = dict(loaded.module.named_modules())
    if layers == "all" or list(layers) == ["all"]:
        chosen = [name for name, row in maps.items() if row.calls == 1 and (row.type == "Conv2d" or (
            not is_leaf(modules[name]) and not isinstance(modules[name], nn.Sequential)))]
        if not chosen:
            raise ProbeUsageError(f"{loaded.name} has no convolution or block with a (C, H, W) map or tokens",
                                  param="layers")
        return [(name, int(maps[name].channels)) for name in chosen]
    names = [layers] if isinstance(layers, str) else list(layers)
    result = []
    for name in names:
        if name not in modules or not name:
            raise unknown_name("layer", name, [row.name for row in rows], param="layers")
        if name not in maps:
            raise ProbeUsageError(f"layer {name!r} has no (C, H, W) map or (L, C) tokens (its output is "
                                  f"{next((r.output_shape for r in rows if r.name == name), None)}); an atlas shows "
                                  "convolutions, blocks and token layers", param="layers")
        if maps[name].calls > 1:
            raise ProbeUsageError(f"layer {name!r} runs {maps[name].calls} times in one forward pass, so one unit has "
                                  "several maps; an atlas shows layers that run once: choose another layer",
                                  param="layers")
        if name in (n for n, _ in result):
            raise ProbeUsageError(f"layer {name!r} is named twice", param="layers")
        result.append((name, int(maps[name].channels)))
    return result


def _on_rank_0(group: Group, work: Callable[[], Any], what: str) -> Any:
    """Run ``work`` on rank 0 alone and give every rank its result; its error reaches every rank at this
    broadcast (:mod:`probe.atlas.distributed`)."""
    return group.broadcast(work() if group.rank == 0 else None, what)


def _start_folder(folder: Path, settings: AtlasSettings, force: bool, weights: str, dataset: str) -> None:
    """Rank 0: start, resume or refuse ``folder`` (see the module docstring).

    ``weights`` is the digest of the model's weights (:func:`~probe.chunkstore.weights_digest`): a weights
    file that changed under the same path, or other random weights, is not resumed with the old images.
    ``dataset`` is the dataset's identity (:meth:`~probe.atlas.data.AtlasData.identity`): a folder of
    other images under the same path and of the same size is not resumed with the old examples. An atlas
    begun before its run file recorded a digest is resumed, and the digest recorded from now on.
    """
    run = read_json(folder / RUN_FILE)
    digests = {"weights_digest": weights, "dataset_digest": dataset}
    if run is not None and isinstance(run, dict) and "digest" in run:
        changed = [key for key, value in digests.items() if run.get(key, value) != value]
        if run["digest"] == settings.digest() and not changed:
            for sub in (folder, folder / "records", folder / "images"):
                remove_partial(sub)
            if any(key not in run for key in digests):
                write_json(folder / RUN_FILE, {**run, **digests})
            return
        if not force:
            if run["digest"] == settings.digest() and "weights_digest" in changed:
                raise ProbeUsageError(f"{str(folder)!r} holds an atlas of the same settings but other weights "
                                      f"({settings.weights}: their content changed since it was begun); rerun with "
                                      "those weights to resume it, choose another --out, or --force to start over",
                                      param="weights")
            if run["digest"] == settings.digest():
                raise ProbeUsageError(f"{str(folder)!r} holds an atlas of the same settings over another dataset "
                                      f"({settings.dataset}, {settings.dataset_size:,} images: their names, sizes or "
                                      "modification times changed since it was begun); rerun with that --dataset to "
                                      "resume it, choose another --out, or --force to start over", param="dataset")
            differences = "; ".join(settings.differences(run.get("settings", {}))[:4])
            raise ProbeUsageError(f"{str(folder)!r} holds an atlas made with other settings ({differences}); rerun "
                                  "with those settings to resume it, choose another --out, or --force to start over",
                                  param="out")
        _clear(folder)
    elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ProbeUsageError(f"{str(folder)!r} is not empty and holds no atlas; choose a new or empty --out "
                              "(nothing was deleted)", param="out")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / RUN_FILE, {"command": "atlas", "version": __version__, "digest": settings.digest(),
                                   **digests, "settings": settings.as_dict()})


_OWN_NAMES = {
    ".": re.compile(rf"index\.html|atlas\.json|{re.escape(RUN_FILE)}|layer-[A-Za-z0-9._-]+\.html|[A-Za-z0-9._-]+-\d{{4}}\.html"),
    "images": re.compile(r"[A-Za-z0-9._-]+-\d{4}-s\d+\.png|x\d{6}(-\d+){4}\.png"),
    "records": re.compile(r"examples\.json|[A-Za-z0-9._-]+-\d{4}-\d{4}\.json"),
}
"""The names an atlas writes in its folder and in ``images/`` and ``records/`` (besides its ``.tmp-*`` files)."""


def _clear(folder: Path) -> None:
    """Delete what an atlas wrote in ``folder``, and nothing else: a folder that also holds files of the
    user's (notes, another tool's pages, a link for ``images/``) is refused with nothing deleted.

    Raises:
        ProbeUsageError: (``param="out"``) ``folder`` holds files or links an atlas does not write.
    """
    own: list[Path] = []
    foreign: list[str] = []
    for sub, names in _OWN_NAMES.items():
        where = folder / sub
        if sub != "." and (where.is_symlink() or (where.exists() and not where.is_dir())):
            foreign.append(sub)
            continue
        for path in sorted(where.iterdir()) if where.is_dir() else ():
            if sub == "." and path.name in ("images", "records") and path.is_dir() and not path.is_symlink():
                continue
            mine = path.is_file() and not path.is_symlink() and (
                names.fullmatch(path.name) is not None or is_temporary(path.name))
            (own.append(path) if mine else foreign.append(str(path.relative_to(folder))))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ProbeUsageError(f"{str(folder)!r} holds files an atlas does not write ({shown}); refusing to start "
                              "over even with --force: move them out, or choose another --out (nothing was deleted)",
                              param="out")
    run_file = folder / RUN_FILE  # last: while it is there, a run killed mid-way still finds an atlas to clear
    for path in own:
        if path != run_file:
            path.unlink(missing_ok=True)
    for sub in ("images", "records"):
        if (folder / sub).is_dir():
            (folder / sub).rmdir()
    run_file.unlink(missing_ok=True)


def _claim_folder(folder: Path, held: ExitStack) -> None:
    """Rank 0: hold ``folder``'s lock (:func:`probe.folderlock.lock_folder`) until the atlas is done, so that a
    second ``probe atlas`` into it (or a ``--force`` one) is refused instead of deleting or mixing this one's
    files; the kernel drops the lock when the process dies. A missing folder is made first (empty).

    Raises:
        ProbeUsageError: (``param="out"``) another process holds the lock.
    """
    if not folder.exists() and not folder.is_symlink():
        folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        return  # a file: _start_folder refuses it
    handle = lock_folder(folder.resolve())
    if handle is None:
        raise ProbeUsageError(f"another probe atlas is writing {str(folder)!r}; wait for it to end, or choose "
                              "another --out", param="out")
    held.callback(release, handle)


Boxes = dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...]]]
"""``{(layer, position): (field, effective box)}`` of the example positions of irregular layers."""


def _boxes(group: Group, loaded: LoadedModel, merged: dict[str, UnitExamples],
           settings: AtlasSettings) -> tuple[dict[str, ReceptiveField], Boxes]:
    """Every rank: each layer's receptive field, and the measured field and effective box
    (:func:`~probe.atlas.receptive.measure_fields`) of every example position of an irregular layer.

    The ranks share the work (:meth:`Group.share`): the layers round-robin, then the
    irregular layers' positions in fixed groups of :data:`POSITIONS_PER_PASS`, so the
    result is the one process's, bit for bit. Returns ``(fields, boxes)``.
    """
    size, seed = settings.image_size, settings.seed
    fields = dict(zip(settings.layers, group.share(
        settings.layers, lambda layer: receptive_field(loaded, layer, size, seed=seed), "measuring receptive fields")))
    groups = []
    for layer in settings.layers:
        if not fields[layer].regular:
            top = merged[layer].top
            used = sorted({int(p) for p, i in zip(top.position.flatten().tolist(), top.index.flatten().tolist()) if i >= 0})
            groups += [(layer, used[start:start + POSITIONS_PER_PASS]) for start in range(0, len(used), POSITIONS_PER_PASS)]
    measured = group.share(groups, lambda item: measure_fields(loaded, item[0], item[1], size, seed=seed),
                           "measuring the examples' boxes")
    boxes = {(layer, position): box for (layer, positions), found in zip(groups, measured)
             for position, box in zip(positions, found)}
    return fields, boxes


def _examples_record(group: Group, loaded: LoadedModel, data: AtlasData, merged: dict[str, UnitExamples],
                     settings: AtlasSettings) -> dict[str, Any]:
    """Every rank: the examples record, its boxes measured by all ranks.

    Each example has its ``field`` (every pixel that can change its position) and its ``box``, the crop: the
    field where the layer's fields are one box moved by a stride, else the position's effective box (the
    95% of the gradient's mass, :mod:`probe.atlas.receptive`), and the crop's file.
    """
    fields, boxes = _boxes(group, loaded, merged, settings)
    layers: dict[str, Any] = {}
    for layer in settings.layers:
        entry, field_ = merged[layer], fields[layer]
        units = []
        for unit in range(entry.top.scores.shape[0]):
            examples = []
            for rank_in_unit in range(entry.top.scores.shape[1]):
                index = int(entry.top.index[unit, rank_in_unit])
                if index < 0:
                    continue
                position = int(entry.top.position[unit, rank_in_unit])
                y, x = divmod(position, entry.map_width)
                seen, box = (field_.box(y, x),) * 2 if field_.regular else boxes[(layer, position)]
                examples.append({"index": index, "name": data.names[index], "file": crop_file(index, box),
                                 "y": y, "x": x, **({"token": position} if entry.tokens else {}),
                                 "box": list(box), "field": list(seen),
                                 "score": float(entry.top.scores[unit, rank_in_unit])})
            units.append({"examples": examples, "histogram": entry.histogram.unit(unit)})
        layers[layer] = {"receptive_field": field_.as_dict(), "seen": entry.seen, "units": units}
    return {"digest": settings.digest(), "crops": CROPS, "layers": layers}


def crop_file(index: int, box: Sequence[int]) -> str:
    """The file of dataset image ``index``'s crop ``box`` (top, left, bottom, right): ``images/x000017-0-0-224-224.png``.

    One file per (image, box), shared by every unit whose example it is: a deep
    layer's field covers the whole image, so its units share most crops.
    """
    return f"images/x{index:06d}-{'-'.join(str(int(v)) for v in box)}.png"


def _write_crops(data: AtlasData, record: dict[str, Any], folder: Path, rank: int = 0, world: int = 1,
                 check: Callable[[], None] | None = None) -> None:
    """Write the crop files of ``record``'s examples whose dataset image falls to ``rank`` (every ``world``-th index).

    Each (image, box) is cut and encoded once, and its bytes written to every
    file that names it (one, as :func:`crop_file` names them). ``check()``, if
    given, runs before each batch of 64 images (:meth:`Group.check`).
    """
    wanted: dict[int, dict[tuple[int, ...], set[Path]]] = {}
    for layer in record["layers"].values():
        for unit in layer["units"]:
            for example in unit["examples"]:
                wanted.setdefault(example["index"], {}).setdefault(tuple(example["box"]), set()).add(
                    folder / example["file"])
    mine = sorted(wanted)[rank::world]
    for start in range(0, len(mine), 64):
        if check is not None:
            check()
        batch = mine[start:start + 64]
        for index, image in zip(batch, data.load(batch)):
            whole = to_pil(image)  # 8 bits once per image; a crop of it has the same pixels as to_pil of the crop
            for (top, left, bottom, right), paths in wanted[index].items():
                encoded = png_bytes(whole.crop((left, top, right, bottom)))
                for path in sorted(paths):
                    write_bytes(path, encoded)


def _examples_stage(group: Group, loaded: LoadedModel, data: AtlasData, folder: Path, settings: AtlasSettings,
                    batch: int, progress: Progress | None) -> tuple[dict[str, Any], bool, int | None]:
    """The dataset pass (batches dealt to the ranks), rank 0's record, every rank's share of the crops, then
    ``records/examples.json``, written last: it means the stage is done.

    Returns ``(record, reused, stale)``: ``stale`` is None, or the number of crop files removed when this
    atlas's record was an older cnn-probe's (cut to the whole field, :data:`CROPS`) and was made again.
    """
    path = folder / "records" / "examples.json"
    found = _on_rank_0(group, lambda: _examples_state(read_json(path), settings), "reading the dataset record")
    if found == "valid":
        existing = read_json(path)  # rank 0 found it; on a folder every rank shares, so does this rank
        if _examples_state(existing, settings) == "valid":
            return existing, True, None
        raise ProbeRuntimeError(f"rank {group.rank} cannot read {str(path)!r}, which rank 0 read: --out must be a "
                                "folder every process sees (a shared file system on several machines)")
    batches = batches_of(len(data), batch)[group.rank::group.world]
    done = [0]

    def step(images: int) -> None:
        done[0] += images
        if progress is not None:
            progress("dataset", done[0], sum(len(b) for b in batches))
        group.check()
        group.tick()

    mine = dataset_pass(loaded, data.load, settings.layers, batches, k=min(settings.examples, max(1, len(data))),
                        keep=settings.units,
                        precision=settings.precision, progress=step)
    parts = group.gather({layer: entry.cpu() for layer, entry in mine.items()}, "gathering the dataset pass")
    record = _examples_record(group, loaded, data, merge_passes(parts), settings)
    _write_crops(data, record, folder, group.rank, group.world, lambda: (group.check(), group.tick()))
    group.barrier("writing the example crops")  # every rank's crops are on disk before the record says so

    def replace() -> int:
        old = read_json(path) if found == "old crops" else None
        write_json(path, record)
        return _remove_stale_crops(folder, old, record)

    stale = _on_rank_0(group, replace, "writing the dataset record")
    return record, False, stale if found == "old crops" else None


def _crop_files(record: Any) -> set[str]:
    """The crop files an examples record names."""
    return {example["file"] for layer in record["layers"].values() for unit in layer["units"]
            for example in unit["examples"]}


def _remove_stale_crops(folder: Path, old: Any, new: dict[str, Any]) -> int:
    """Delete the crop files of the ``old`` examples record (an older cnn-probe's) that ``new`` does not name;
    return how many (0 without an old record)."""
    if not isinstance(old, dict) or not isinstance(old.get("layers"), dict):
        return 0
    try:
        stale = _crop_files(old) - _crop_files(new)
    except (KeyError, TypeError, AttributeError):
        return 0
    removed = 0
    for name in sorted(stale):
        target = folder / name
        if target.parent == folder / "images" and target.is_file():
            target.unlink()
            removed += 1
    return removed


def _examples_state(record: Any, settings: AtlasSettings) -> str:
    """``"valid"``, ``"old crops"`` (this atlas's record, cut by an older cnn-probe: see :data:`CROPS`) or
    ``"missing"``."""
    if not _valid(record, settings):
        return "missing"
    return "valid" if record.get("crops") == CROPS else "old crops"


def _valid(record: Any, settings: AtlasSettings) -> bool:
    """Whether ``record`` (a record file's JSON, or None) belongs to the atlas of ``settings``."""
    return isinstance(record, dict) and record.get("digest") == settings.digest()


def _spread(images: torch.Tensor) -> float:
    """Mean pairwise RMS pixel distance of ``images`` ``(K, C, H, W)`` (0 for one image)."""
    if images.shape[0] < 2:
        return 0.0
    flat = images.flatten(1).double()
    distances = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    count = images.shape[0]
    return float(distances.sum() / (count * (count - 1)))


def _render_chunk(loaded: LoadedModel, chunk: Chunk, folder: Path, settings: AtlasSettings,
                  writer: Writer, tick: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Render one chunk's units and hand their images, then the chunk's record, to ``writer``; return the record.

    Each unit's record names its files, scores, spread and ``unmoved``: the copies (``s0``, ``s1``...) that
    never changed from their starting noise (:func:`probe.optimize.unmoved_images`: no gradient reached them).
    ``tick()`` runs after every optimization step (:meth:`Group.tick`: the rank's heartbeat, a peer's stop).
    """
    copies = settings.per_unit
    expanded = [unit for unit in chunk.units for _ in range(copies)]
    objective = O.channel(chunk.layer, expanded)
    if copies > 1 and settings.diversity > 0:
        objective = objective + settings.diversity * O.diversity(chunk.layer, group=copies)
    result = maximize(loaded, objective, steps=settings.steps, lr=settings.lr, preset=settings.preset,
                      image_size=settings.image_size, seed=settings.seed,
                      precision=settings.precision, channels_last=settings.channels_last,
                      progress=lambda step, total, metrics: tick())
    values = result.terms.get(result.main, result.scores)
    unmoved = set(result.settings.get("unmoved", []))
    units, images = [], []
    for offset, unit in enumerate(chunk.units):
        rows = slice(offset * copies, (offset + 1) * copies)
        files = [f"images/{file_stem(chunk.layer)}-{unit:04d}-s{k}.png" for k in range(copies)]
        images += zip(files, result.images[rows])
        units.append({"unit": unit, "files": files, "scores": [float(v) for v in values[rows]],
                      "spread": _spread(result.images[rows]),
                      "unmoved": [k for k in range(copies) if offset * copies + k in unmoved]})
    record = {"digest": settings.digest(), "layer": chunk.layer, "start": chunk.start, "stop": chunk.stop,
              "units": units, "seconds": result.seconds}

    def write() -> None:
        for file, image in images:
            write_png(folder / file, to_pil(image))
        write_json(folder / "records" / f"{chunk.name}.json", record)

    writer.submit(write)
    return record


def _done(folder: Path, chunk: Chunk, digest: str) -> bool:
    record = read_json(folder / "records" / f"{chunk.name}.json")
    return isinstance(record, dict) and record.get("digest") == digest and all(
        (folder / file).is_file() for unit in record.get("units", []) for file in unit.get("files", []))


@with_gradients
def build_atlas(
    model: str,
    *,
    out: str | Path | None = None,
    weights: str | None = "default",
    layers: str | Sequence[str] = "all",
    dataset: str | Path = "zoo",
    examples: int = 9,
    per_unit: int = 1,
    diversity: float | None = None,
    steps: int = 256,
    preset: str = "robust",
    lr: float | None = None,
    chunk: int = 16,
    batch: int = 64,
    limit: int | None = None,
    max_units: int | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    channels_last: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    on_start: Callable[[AtlasSummary, int], None] | None = None,
    model_options: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> AtlasSummary:
    """Render an atlas of ``model``: every unit of ``layers`` with its synthetic image(s) and dataset examples.

    Run it in one process, or in every process of ``torchrun`` (the processes
    share the work; see the module docstring). Rerunning with the same
    arguments resumes: only missing chunks are rendered.

    Args:
        model: a model spec for :func:`probe.load_model` (each rank loads it on its device).
        out: the atlas folder (new, empty, or an atlas with the same settings);
            default ``runs/atlas-<model>-<first 8 digits of the settings' digest>``,
            so that the same call finds its folder again.
        weights: as for :func:`probe.load_model` (``"default"``, None = random, a file).
        layers: ``"all"`` or layer names (see :func:`atlas_layers`).
        dataset: ``"zoo"``, ``"skimage"`` or a folder (see :func:`probe.atlas.data.open_dataset`).
        examples: dataset examples per unit (default 9).
        per_unit: synthetic images per unit (default 1); several differ by diversity.
        diversity: weight of the diversity term when ``per_unit > 1`` (default 10).
        steps, preset, lr, precision, channels_last: as for :func:`probe.maximize` (defaults 256, robust).
        chunk: units per chunk, the unit of work and of resuming (default 16).
        batch: dataset images per forward pass (default 64).
        limit: use only the first ``limit`` dataset images (default all).
        max_units: map only the first ``max_units`` units of each layer (default all).
        seed: the atlas seed (default 0).
        device: ``"auto"`` (``cuda:LOCAL_RANK`` when there is a GPU), ``"cpu"``, ``"cuda[:N]"``.
        force: replace an atlas with other settings in ``out`` (only an atlas is ever deleted).
        progress: ``progress(stage, done, total)``, see :data:`Progress`.
        on_start: ``on_start(summary, missing_chunks)`` once the plan is known (for a log line).
        model_options: more keyword arguments of :func:`probe.load_model` (``model_args``,
            ``mean``, ``std``, ``channels``, ``input_size``); default none.
        timeout: under torchrun, seconds without progress after which a process counts as hung or killed:
            every process then ends within about that long, with one line naming it (default
            :data:`~probe.atlas.liveness.DEFAULT_TIMEOUT_S`, 600; see :mod:`probe.atlas.liveness`).

    Returns:
        This rank's :class:`AtlasSummary`.

    Raises:
        ProbeUsageError: bad layers, dataset, folder or option (on every rank).
        ProbeRuntimeError: the work failed (NaN, a failed process group).
    """
    for name, value, low in (("examples", examples, 1), ("per_unit", per_unit, 1), ("steps", steps, 1),
                             ("chunk", chunk, 1), ("batch", batch, 1), ("max_units", 1 if max_units is None else max_units, 1)):
        if value < low:
            raise ProbeUsageError(f"{name.replace('_', '-')} must be >= {low}; got {value}", param=name)
    with join(device, timeout) as (group, chosen), ExitStack() as held:
        loaded = load_model(model, weights=weights, device=chosen, seed=seed, **dict(model_options or {}))
        group.tick()
        chosen_layers = [(name, min(count, max_units or count)) for name, count in atlas_layers(loaded, layers)]
        data = open_dataset(dataset, loaded, limit=limit)
        group.tick()
        source = str(Path(dataset).expanduser().resolve()) if data.paths else str(dataset)
        weight = diversity if diversity is not None else (DEFAULT_DIVERSITY if per_unit > 1 else 0.0)
        settings = AtlasSettings(
            model=loaded.name, weights=loaded.weights, layers=tuple(n for n, _ in chosen_layers),
            units=tuple(c for _, c in chosen_layers), dataset=source, dataset_size=len(data), examples=examples,
            per_unit=per_unit, diversity=float(weight) if per_unit > 1 else 0.0, steps=steps, preset=preset, lr=lr,
            image_size=tuple(loaded.preprocess.input_size), chunk=chunk, seed=seed, precision=precision,
            channels_last=channels_last,
            extra={"model_options": loaded.describe()} if any(v is not None for v in (model_options or {}).values()) else {},
        )  # fmt: skip
        _check_chunk_fits(settings, loaded)
        named = Path(out).expanduser() if out is not None else (
            Path("runs") / f"atlas-{slug(loaded.name)}-{settings.digest()[:8]}")
        # the atlas folder the user named may be a link (a shared disk's): followed once, here; no link inside it is
        folder = followed(named)
        def start() -> None:
            digests = weights_digest(loaded.module), data.identity()
            _claim_folder(folder, held)
            _start_folder(folder, settings, force, *digests)

        _on_rank_0(group, start, "starting the atlas folder")
        summary = AtlasSummary(named, group.rank, group.world, settings, units=sum(settings.units))
        record, summary.dataset_reused, summary.old_crops = _examples_stage(group, loaded, data, folder, settings, batch, progress)
        chunks = make_chunks(settings.layers, settings.units, chunk)
        missing = _on_rank_0(group, lambda: [i for i, c in enumerate(chunks) if not _done(folder, c, settings.digest())],
                             "listing the chunks to render")
        summary.total, summary.skipped = len(chunks), len(chunks) - len(missing)
        if on_start is not None:
            on_start(summary, len(missing))
        started = time.perf_counter()
        with Writer() as writer:
            for number, claimed in enumerate(group.claim(len(missing)), 1):
                target = chunks[missing[claimed]]
                _render_chunk(loaded, target, folder, settings, writer, group.tick)
                summary.rendered.append(target.name)
                if progress is not None:
                    progress("render", number, len(missing))
        summary.seconds = time.perf_counter() - started
        group.barrier("waiting for the others' chunks")
        site, unmoved = _on_rank_0(group, lambda: _write_site(folder, settings, record, chunks, group.tick),
                                   "writing the site")
        if group.rank == 0:
            summary.site, summary.unmoved = site, unmoved
    return summary


def _check_chunk_fits(settings: AtlasSettings, loaded: LoadedModel) -> None:
    """Refuse, before anything is written, an atlas whose largest chunk cannot fit in memory.

    A chunk is one :func:`~probe.optimize.maximize` pass of ``chunk x per_unit`` images: its kept results
    are counted first (``--per-unit 2147483647`` froze the command while it listed the units), then its
    working set is measured as maximize measures it (:func:`~probe.optimize.plan_memory`), with an objective
    that reads every layer of the atlas, so that the pass runs to the deepest of them (the most it saves).
    """
    images = min(settings.chunk, max(settings.units, default=1)) * settings.per_unit
    height, width = settings.image_size
    advice = "lower --per-unit, --chunk or --steps"
    what = optimization_text(images, (height, width), settings.steps, run="a chunk of")
    check_results_fit(images, (loaded.preprocess.channels, height, width), settings.steps, 0, loaded.device, what,
                      advice)
    objective = sum((O.channel(layer, [0] * images) for layer in settings.layers[1:]),
                    O.channel(settings.layers[0], [0] * images))
    if settings.per_unit > 1 and settings.diversity > 0:
        objective = objective + settings.diversity * O.diversity(settings.layers[0], group=settings.per_unit)
    plan_memory(loaded, objective, steps=settings.steps, preset=settings.preset, image_size=settings.image_size,
                seed=settings.seed, precision=settings.precision, channels_last=settings.channels_last,
                what=what, advice=advice)


def _write_site(folder: Path, settings: AtlasSettings, record: dict[str, Any], chunks: Sequence[Chunk],
                tick: Callable[[], None] | None = None) -> tuple[Path, list[str]]:
    """Rank 0: ``atlas.json`` and the pages from the records on disk, ``tick()`` after each page (its progress
    mark: a site of many pages is no hung rank); return ``index.html`` and the ``"layer:unit"`` of the units
    whose synthetic image never moved."""
    from probe.atlas.site import write_atlas

    records = [read_json(folder / "records" / f"{c.name}.json") for c in chunks]
    unmoved = [f"{r['layer']}:{u['unit']}" for r in records for u in r["units"] if u.get("unmoved")]
    return write_atlas(folder, settings, record, records, tick), unmoved
