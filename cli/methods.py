"""The newer methods of ``probe maximize`` at work: MACO, Lucent strings, caricature, accentuation, redirected ReLU.

Their options are declared, free of torch, in :mod:`probe.cli.commands.methods`. Kept apart from
:mod:`probe.cli.maximize` so that command stays its own work; it calls :func:`target_shorthand` once the
model is loaded and :func:`apply_methods` once its objective is built.
"""

from __future__ import annotations

from typing import Any

from probe import objectives as O
from probe import param as P
from probe.accentuate import accentuation
from probe.errors import ProbeUsageError
from probe.images import load_image
from probe.optimize import PRESETS, LayerShape, inspect_layer
from probe.cli.common import option_given

__all__ = ["target_shorthand", "apply_methods"]


def target_shorthand(methods: dict[str, Any], loaded: Any, layer: str | None, units: list[str], objective: str,
                     size: tuple[int, int] | None) -> tuple[str | None, list[str], str, LayerShape | None]:
    """``--target LAYER:UNITS`` -> ``(layer, units, objective, shape)``; the given ones and None when it is absent.

    ``shape`` is what :func:`~probe.optimize.inspect_layer` found (one dummy
    pass), for the caller to reuse rather than run the pass again.

    Raises:
        ProbeUsageError: ``--target`` together with ``--layer``, or unreadable.
    """
    text = methods.get("target")
    if not text:
        return layer, units, objective, None
    if layer is not None:
        raise ProbeUsageError("--target already names the layer; leave --layer out", param="target")
    _refuse_units_given("target", "--target already names the units (and the objective: channel or neuron, from "
                                  "the layer)")  # they were ignored: --target conv2:7 --units 3 rendered unit 7 alone
    name, sep, chosen = text.strip().rpartition(":")
    if not sep or not name or not chosen:
        raise ProbeUsageError(f"cannot read --target {text!r}; write LAYER:UNITS, e.g. conv2:7", param="target")
    info = inspect_layer(loaded, name, size, advice="give a smaller --size")
    return name, chosen.split(","), "channel" if len(info.shape) > 1 else "neuron", info


def _refuse_units_given(param: str, why: str) -> None:
    """Refuse ``--units`` or ``--objective`` given beside an option (``param``) that decides them itself.

    Raises:
        ProbeUsageError: (naming ``param``) ``"{why}; leave --units out"``; ``why`` may name the option as
            ``{option}``.
    """
    for option in ("--units", "--objective"):
        if option_given(option[2:]):
            raise ProbeUsageError(f"{why.format(option=option)}; leave {option} out", param=param)


def _image(source: str, loaded: Any, size: tuple[int, int], option: str) -> Any:
    try:
        return load_image(source, channels=loaded.preprocess.channels, size=size)
    except ProbeUsageError as error:
        raise ProbeUsageError(str(error), param=option) from None


def apply_methods(methods: dict[str, Any], loaded: Any, target: O.Objective, info: LayerShape, preset: str,
                  size: tuple[int, int]) -> tuple[O.Objective, dict[str, Any], dict[str, Any]]:
    """Turn the method options into ``(objective, maximize keyword arguments, manifest options)``.

    Raises:
        ProbeUsageError: an option without the one it needs (``--spectrum``
            without ``--param maco``, ``--accentuate`` without ``--from``).
    """
    kind = methods.get("param")
    spectrum = methods.get("spectrum")
    seed_image = methods.get("seed_image")
    weight = methods.get("accentuate")
    record: dict[str, Any] = {}
    arguments: dict[str, Any] = {"redirect_relu": methods.get("redirect_relu") or 0}
    if spectrum is not None and kind != "maco":
        raise ProbeUsageError("--spectrum sets the magnitude of the MACO parametrization; add --param maco",
                              param="spectrum")
    if weight is not None and seed_image is None:
        raise ProbeUsageError("--accentuate W keeps the result near the --from image; give --from IMAGE",
                              param="accentuate")
    if methods.get("caricature"):
        _refuse_units_given("caricature", "--caricature amplifies the whole --layer as it sees IMAGE, so it takes "
                                          "no {option}")  # they were ignored: the caricature is of the whole layer
        photo = _image(methods["caricature"], loaded, size, "caricature")
        target = O.caricature(info.name, O.activations_of(loaded, photo, info.name))
        record["caricature"] = methods["caricature"]
    if seed_image is not None:
        chosen = PRESETS[preset]
        name = kind or chosen.param
        options = dict(chosen.param_options) if name == chosen.param else {}
        photo = _image(seed_image, loaded, size, "seed_image")
        target, arguments["param"] = accentuation(target, photo, weight or 0.0, param=name, param_options=options)
        record.update({"from": seed_image, "accentuate": weight or 0.0})
    elif kind == "maco" and spectrum is not None:
        arguments["param"] = P.parametrization("maco", spectrum=spectrum)
    elif kind is not None:
        arguments["param"] = kind
    return target, arguments, record
