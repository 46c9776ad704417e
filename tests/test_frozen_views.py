"""A frozen view is made once per module and served again only while the module is what it was copied from."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import pytest
import torch
from torch import nn

import probe
from probe.models import frozen_view
from probe.models import types as model_types
from tinynets import tiny


def _copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the modules :func:`frozen_view` deep-copies from now on (not the modules: they may die)."""
    made: list[int] = []
    original = model_types._copied_view

    def counted(module: nn.Module, channels_last: bool) -> nn.Module:
        made.append(id(module))
        return original(module, channels_last)

    monkeypatch.setattr(model_types, "_copied_view", counted)
    return made


def _faithful(view: nn.Module, module: nn.Module, shared: bool = True) -> None:
    """``view`` is a frozen copy of ``module`` as it is now: same layers, modes, values (storage too when
    ``shared``), buffers, hooks and output."""
    assert view is not module
    assert [name for name, _ in view.named_modules()] == [name for name, _ in module.named_modules()]
    for (name, a), (_, b) in zip(view.named_modules(), module.named_modules()):
        assert type(a) is type(b) and a.training == b.training, name
        assert list(a._forward_hooks) == list(b._forward_hooks), name
    pairs = list(zip(view.named_parameters(), module.named_parameters(), strict=True))
    for (name, viewed), (other, original) in pairs:
        assert name == other and not viewed.requires_grad and viewed.dtype == original.dtype
        assert torch.equal(viewed, original), name
        if shared:
            assert viewed.data_ptr() == original.data_ptr(), name
    assert all(a is b for a, b in zip(view.buffers(), module.buffers(), strict=True))
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)).to(next(module.parameters()).dtype)
    with torch.no_grad():
        torch.testing.assert_close(view(x), module(x))


def _state(module: nn.Module) -> list[object]:
    """Everything of ``module`` cnn-probe promises not to change."""
    return [(name, type(m), m.training, dict(m._forward_hooks), dict(m._forward_pre_hooks)) for name, m in
            module.named_modules()] + [(name, id(p), p.data_ptr(), p.requires_grad, p.clone()) for name, p in
                                       module.named_parameters()] + [id(b) for b in module.buffers()]


def _same_state(before: list[object], after: list[object]) -> bool:
    return len(before) == len(after) and all(
        all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y for x, y in zip(a, b)) if isinstance(a, tuple)
        else a == b for a, b in zip(before, after))


def test_an_unchanged_module_gets_the_same_view_without_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    module = tiny().eval()
    made = _copies(monkeypatch)
    first = frozen_view(module)
    assert frozen_view(module) is first and len(made) == 1
    _faithful(first, module)
    last = frozen_view(module, channels_last=True)  # another format: a view of its own
    assert last is not first and frozen_view(module, channels_last=True) is last and len(made) == 2


def _replace_layer(module: nn.Module) -> None:
    module.fc = nn.Linear(6 * 8 * 8, 4)


def _replace_parameter(module: nn.Module) -> None:
    module.conv2.weight = nn.Parameter(torch.randn(6, 4, 3, 3))


def _replace_buffer(module: nn.Module) -> None:
    module.bn2.running_mean = torch.full((6,), 0.25)


def _add_layer(module: nn.Module) -> None:
    module.add_module("extra", nn.Tanh())


def _remove_layer(module: nn.Module) -> None:
    del module.counter


def _swap_layer_kind(module: nn.Module) -> None:
    module.relu2 = nn.GELU()


def _to_double(module: nn.Module) -> None:
    module.double()


def _train_mode(module: nn.Module) -> None:
    module.bn2.train()  # a batch norm's mode: the view would use the batch's statistics


def _flip_requires_grad(module: nn.Module) -> None:
    module.fc.bias.requires_grad_(False)


def _add_hook(module: nn.Module) -> None:
    module.relu1.register_forward_hook(lambda m, args, out: out * 2)


def _change_attribute(module: nn.Module) -> None:
    module.relu1.inplace = True
    module.pool1.stride = 1  # shapes change: the head would refuse a stale view's output
    module.fc = nn.Linear(6 * 15 * 15, 4)


MUTATIONS: dict[str, Callable[[nn.Module], None]] = {
    "replace a layer": _replace_layer, "replace a parameter": _replace_parameter, "replace a buffer": _replace_buffer,
    "add a layer": _add_layer, "remove a layer": _remove_layer, "swap a layer's kind": _swap_layer_kind,
    "move to float64": _to_double, "train a layer": _train_mode, "flip requires_grad": _flip_requires_grad,
    "add a hook": _add_hook, "change an attribute": _change_attribute,
}


@pytest.mark.parametrize("mutation", MUTATIONS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_every_change_of_the_module_gives_the_next_call_a_faithful_view(mutation: str, channels_last: bool) -> None:
    module = tiny().eval()
    stale = frozen_view(module, channels_last=channels_last)
    MUTATIONS[mutation](module)
    view = frozen_view(module, channels_last=channels_last)
    assert view is not stale
    _faithful(view, module, shared=not channels_last)


def test_a_removed_hook_is_gone_from_the_next_view() -> None:
    module = tiny().eval()
    handle = module.relu1.register_forward_hook(lambda m, args, out: out * 2)
    frozen_view(module)
    handle.remove()
    _faithful(frozen_view(module), module)


def test_load_state_dict_is_seen_by_the_shared_view_and_renews_a_channels_last_copy() -> None:
    module = tiny().eval()
    shared, copied = frozen_view(module), frozen_view(module, channels_last=True)
    other = tiny()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-3)
    module.load_state_dict(other.state_dict())  # copies in place: same tensors, same storage
    assert frozen_view(module) is shared  # it shares that storage: nothing to copy again
    _faithful(shared, module)
    renewed = frozen_view(module, channels_last=True)  # its 4-D weights were copies: a new view
    assert renewed is not copied
    _faithful(renewed, module, shared=False)


def test_every_requires_grad_off_gives_the_module_itself_and_back_on_a_view() -> None:
    module = tiny().eval()
    frozen_view(module)
    module.requires_grad_(False)
    assert frozen_view(module) is module
    module.requires_grad_(True)
    _faithful(frozen_view(module), module)


def test_the_users_module_is_never_changed_by_views_or_runs() -> None:
    module = tiny().eval()
    module.train()  # a model left in training mode, with a hook of its own
    module.fc.register_forward_hook(lambda m, args, out: None)
    before = _state(module)
    for _ in range(2):
        probe.maximize(module, probe.objectives.channel("conv2", 0), steps=1, image_size=16, seed=0)
        frozen_view(module, channels_last=True)
    assert _same_state(before, _state(module))


def test_api_calls_on_one_module_copy_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    module = tiny().eval()
    made = _copies(monkeypatch)
    objective = probe.objectives.channel("conv2", [0, 1])
    first = probe.maximize(module, objective, steps=1, image_size=16, seed=0)
    again = probe.maximize(module, objective, steps=1, image_size=16, seed=0)
    probe.dream(module, torch.rand(3, 16, 16), ["conv2"], steps=1, octaves=1)
    assert len(made) == 1
    assert torch.equal(first.images, again.images)  # a served view renders what a new one does
    _replace_parameter(module)
    changed = probe.maximize(module, objective, steps=1, image_size=16, seed=0)
    assert len(made) == 2 and not torch.equal(changed.images, first.images)


def _collected(make: Callable[[], nn.Module], use: Callable[[nn.Module], object]) -> bool:
    module = make()
    use(module)
    ref = weakref.ref(module)
    del module
    gc.collect()
    return ref() is None


def test_a_deleted_module_is_not_kept_alive_by_its_view() -> None:
    assert _collected(lambda: tiny().eval(), frozen_view)
    assert _collected(lambda: tiny().eval(), lambda m: frozen_view(m, channels_last=True))
    assert _collected(lambda: tiny().eval(), lambda m: probe.maximize(m, probe.objectives.channel("conv2", 0),
                                                                     steps=1, image_size=16, seed=0))
    assert not model_types._VIEWS._views or all(ref() is not None for ref, _, _ in model_types._VIEWS._views.values())


def test_a_view_that_refers_to_its_module_is_not_cached_and_the_module_still_dies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def looped() -> nn.Module:
        module = tiny().eval()
        module.fc.register_forward_hook(lambda m, args, out: module.counter.calls and None)  # names the model
        return module

    module = looped()
    made = _copies(monkeypatch)
    frozen_view(module)
    frozen_view(module)
    assert len(made) == 2  # a cached view would keep the model alive through its hook: made again instead
    assert _collected(looped, frozen_view)


def test_a_torchscript_module_still_gets_a_view_when_it_cannot_be_fingerprinted() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        script = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3)))
    view = frozen_view(script)  # its dict wrappers made the fingerprint raise KeyError
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(view(x), script(x))
