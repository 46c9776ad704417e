"""Every public name of the library has a docstring: the API documentation lives in the code."""

from __future__ import annotations

import inspect

import probe
import probe.atlas


def _public_members(obj: object) -> list[tuple[str, object]]:
    return [
        (name, member) for name, member in vars(obj).items()
        if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, property))
    ]


def test_every_exported_name_is_documented() -> None:
    missing = []
    exported = [(name, getattr(probe, name)) for name in probe.__all__]
    exported += [(f"atlas.{name}", getattr(probe.atlas, name)) for name in probe.atlas.__all__]
    for name, obj in exported:
        if inspect.ismodule(obj) or inspect.isfunction(obj) or inspect.isclass(obj):
            if not (obj.__doc__ or "").strip():
                missing.append(name)
        if inspect.isclass(obj):
            missing += [f"{name}.{member}" for member, value in _public_members(obj)
                        if not (inspect.getdoc(value) or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_objective_terms_are_documented() -> None:
    for name in ("channel", "neuron", "class_logit", "direction", "diversity", "l1", "l2", "total_variation",
                 "parse_objective", "caricature", "channel_interpolate", "alignment", "channel_weight",
                 "neuron_weight", "l2_distance"):
        assert (getattr(probe.objectives, name).__doc__ or "").strip(), name
