"""probe.record / capture / layers: shapes, options, and hooks that never stay behind."""

from __future__ import annotations

import pytest
import torch

import probe
from conftest import clones_while, model_state, no_hooks_left, same_state
from probe.errors import ProbeUsageError
from probe.forward import ModelInputError


def snapshot(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list[bool], list[bool]]:
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return params, [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


def assert_unchanged(model: torch.nn.Module, before: tuple) -> None:
    params, training, requires = before
    after = snapshot(model)
    assert all(torch.equal(params[k], after[0][k]) for k in params)
    assert after[1] == training and after[2] == requires


def test_record_many_layers_gives_their_shapes(model, batch):
    with probe.record(model, ["conv1", "pool1", "fc"]) as acts:
        model.eval()(batch)
    assert acts["conv1"].shape == (2, 4, 16, 16)
    assert acts["pool1"].shape == (2, 4, 8, 8)
    assert acts["fc"].shape == (2, 4)
    assert not acts["conv1"].requires_grad


def test_record_matches_manual_computation(model, batch):
    model.eval()
    with probe.record(model, "conv1") as acts:
        model(batch)
    assert torch.allclose(acts["conv1"], model.conv1(batch))


def test_hooks_removed_and_model_unchanged_after_exit(model, batch):
    before = snapshot(model)
    for _ in range(3):
        with probe.record(model, ["conv1", "conv2", "input", "output"], grads=True):
            model(batch)
    assert no_hooks_left(model)
    assert_unchanged(model, before)


def test_hooks_removed_when_forward_raises(model):
    with pytest.raises(RuntimeError):
        with probe.record(model, ["conv1", "fc"]):
            model(torch.rand(2, 5, 16, 16))  # wrong channel count: conv1 raises
    assert no_hooks_left(model)


def test_hooks_removed_when_block_raises(model, batch):
    with pytest.raises(KeyError):
        with probe.record(model, ["conv1"]) as acts:
            model(batch)
            raise KeyError("user code fails")
    assert no_hooks_left(model)
    assert acts["conv1"].shape[0] == 2


def test_input_and_output_are_reserved_names(model, batch):
    model.eval()
    with probe.record(model, ["input", "output"]) as acts:
        out = model(batch)
    assert torch.equal(acts["input"], batch)
    assert torch.equal(acts["output"], out)


def test_detach_false_keeps_graph(model, batch):
    x = batch.clone().requires_grad_(True)
    with probe.record(model, "conv2", detach=False) as acts:
        model(x)
    acts["conv2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("reduce", "expected"),
    [("mean", [[2.5, 10.0]]), ("max", [[4.0, 10.0]]), ("sum", [[10.0, 40.0]])],
)
def test_spatial_reduction_on_hand_made_map(reduce, expected):
    layer = torch.nn.Identity()
    net = torch.nn.Sequential(layer)
    maps = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 10.0], [10.0, 10.0]]]])
    with probe.record(net, "0", reduce=reduce) as acts:
        net(maps)
    assert acts["0"].tolist() == expected


def test_to_cpu_and_accumulate(model, batch):
    model.eval()
    with probe.record(model, "conv1", to_cpu=True, accumulate=True) as acts:
        model(batch)
        model(batch[:1])
    assert acts["conv1"].device.type == "cpu"
    assert acts["conv1"].shape[0] == 3


def test_gradients_match_autograd(model, batch):
    model.eval()
    x = batch.clone().requires_grad_(True)
    with probe.record(model, "conv2", grads=True, detach=False) as acts:
        out = model(x)
    loss = out[:, 1].sum()
    expected = torch.autograd.grad(loss, acts["conv2"], retain_graph=True)[0]
    loss.backward()
    assert torch.allclose(acts.grads["conv2"], expected)


def test_unknown_layer_lists_names_and_suggests_closest(model):
    with pytest.raises(ProbeUsageError) as info:
        with probe.record(model, ["conv3"]):
            pass
    message = str(info.value)
    assert "unknown layer 'conv3'" in message and "conv1" in message and "did you mean 'conv2'" in message
    assert info.value.param == "layer"
    assert no_hooks_left(model)


def test_unknown_reduction_is_refused_before_running(model):
    with pytest.raises(ProbeUsageError, match="reductions are"):
        with probe.record(model, "conv1", reduce="median"):  # type: ignore[arg-type]
            pass


def test_reading_a_layer_that_did_not_run(model):
    with probe.record(model, "fc") as acts:
        pass
    with pytest.raises(KeyError, match="has not run yet"):
        acts["fc"]


def test_capture_stops_after_the_deepest_layer(model, batch):
    model.eval()
    out = probe.capture(model, batch, ["conv1", "conv2"])  # in an nn.Sequential each layer runs once
    assert set(out) == {"conv1", "conv2"} and model.counter.calls == 0
    assert out["conv2"].shape == (2, 6, 8, 8)
    full = probe.capture(model, batch, ["conv1", "output"])
    assert model.counter.calls == 1 and full["output"].shape == (2, 4)
    assert no_hooks_left(model)


def test_capture_keeps_the_graph_to_the_input(model, batch):
    x = batch.clone().requires_grad_(True)
    out = probe.capture(model.eval(), x, "conv2")
    (grad,) = torch.autograd.grad(out["conv2"].sum(), x)
    assert grad.shape == x.shape and grad.abs().sum() > 0


def test_capture_leaves_a_training_model_as_it_was(model, batch):
    """A model left in train() mode: no batch-norm statistic moves, no dropout is drawn, its flags stay."""
    model.train()
    model.conv1.weight.requires_grad_(False)
    before = model_state(model)
    first = probe.capture(model, batch, ["fc", "output"])["output"]
    assert torch.equal(first, probe.capture(model, batch, ["output"])["output"])  # no dropout drawn
    assert torch.equal(first, model.eval()(batch)) and same_state(before, model_state(model.train()))


def test_evaluating_restores_each_modules_flag(model, batch):
    model.train()
    model.drop.eval()  # a mixed state must come back exactly
    flags = [m.training for m in model.modules()]
    with probe.evaluating(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == flags


def test_layers_lists_types_shapes_and_channels(model):
    before = snapshot(model)
    rows = {row.name: row for row in probe.layers(model, (3, 16, 16))}
    assert rows["conv2"].type == "Conv2d" and rows["conv2"].output_shape == (6, 8, 8)
    assert rows["conv2"].channels == 6 and rows["conv2"].parameters == 4 * 6 * 9 + 6
    assert rows["fc"].output_shape == (4,)
    assert_unchanged(model, before)
    assert no_hooks_left(model)


def test_layers_marks_modules_that_did_not_run():
    class WithAux(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = torch.nn.Conv2d(1, 2, 3)
            self.aux = torch.nn.Linear(2, 2)  # registered but never called in forward

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    net = WithAux()
    rows = {row.name: row for row in probe.layers(net, (1, 5, 5))}
    assert rows["used"].output_shape == (2, 3, 3)
    assert rows["aux"].output_shape is None and rows["aux"].channels is None


def test_recording_shows_itself_as_a_picture(model: torch.nn.Module, batch: torch.Tensor) -> None:
    with probe.record(model, [name for name, _ in model.named_children()][:2]) as acts:
        assert acts._repr_png_() is None  # nothing recorded yet: notebooks fall back to the repr
        model(batch)
    png = acts._repr_png_()
    assert png is not None and png.startswith(b"\x89PNG")
    with probe.record(model, "output", reduce=None) as flat:
        model(batch)
    assert flat._repr_png_().startswith(b"\x89PNG")  # (N, F) layers become a bar chart


class Twice(torch.nn.Module):
    """conv -> bn -> relu, then the same relu again after adding the input back (a ResNet block in small)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(3)
        self.relu = torch.nn.ReLU(inplace=True)
        self.head = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn(self.conv(x)))
        out = self.conv(out)
        out += x  # rewrites the second conv call's output in place
        return self.head(self.relu(out))


def per_call(net: torch.nn.Module, x: torch.Tensor, name: str) -> list[torch.Tensor]:
    """The oracle: each call's output of ``name``, cloned at hook time."""
    calls: list[torch.Tensor] = []
    handle = dict(net.named_modules())[name].register_forward_hook(lambda m, a, out: calls.append(out.detach().clone()))
    with torch.no_grad():
        net(x)
    handle.remove()
    return calls


def test_record_keeps_outputs_an_in_place_op_rewrites_later(batch):
    net = Twice().eval()
    conv = per_call(net, batch, "conv")
    with torch.no_grad(), probe.record(net, ["conv", "bn", "relu"]) as acts:
        net(batch)
    assert torch.equal(acts["conv#0"], conv[0]) and torch.equal(acts["conv#1"], conv[1])
    assert acts["bn"].min() < 0  # the ReLU after it ran in place
    assert acts.calls == {"conv": 2, "bn": 1, "relu": 2}
    assert acts.recorded_as("relu") == ["relu#0", "relu#1"] and acts.recorded_as("bn") == ["bn"]


def test_outputs_nothing_rewrites_stay_the_models_own_tensors(model, batch):
    model.eval()
    x = batch.clone().requires_grad_(True)
    with probe.record(model, ["conv1", "relu1", "output"], detach=False) as acts:
        out = model(x)
    assert torch.equal(acts["output"], out)  # a copy: the caller may rewrite what the pass returns
    (grad,) = torch.autograd.grad(out.sum(), acts["relu1"])  # still part of the model's graph
    assert grad.shape == acts["relu1"].shape


def test_values_are_right_under_inference_mode(batch):
    net = Twice().eval()
    conv = per_call(net, batch, "conv")
    with torch.inference_mode(), probe.record(net, "conv") as acts:
        net(batch)
    assert torch.equal(acts["conv#1"], conv[1])


def test_plain_name_of_a_repeated_module_names_its_calls(batch):
    net = Twice().eval()
    with torch.no_grad(), probe.record(net, ["relu", "conv#1"]) as acts:
        net(batch)
    assert set(acts) == {"relu#0", "relu#1", "conv#1"}
    with pytest.raises(ProbeUsageError, match=r"'relu' runs 2 times .* 'relu#0', 'relu#1'") as info:
        acts["relu"]
    assert info.value.param == "layer"
    with pytest.raises(ProbeUsageError, match="unknown layer 'relu#x'"):
        with probe.record(net, "relu#x"):
            pass


def test_gradients_are_recorded_per_call(batch):
    net = Twice().eval()
    x = batch.clone().requires_grad_(True)
    with probe.record(net, ["conv", "relu"], grads=True, detach=False) as acts:
        out = net(x)
    expected = torch.autograd.grad(out.sum(), [acts["relu#1"]], retain_graph=True)[0]
    out.sum().backward()
    assert torch.allclose(acts.grads["relu#1"], expected)
    assert set(acts.grads) == {"conv#0", "conv#1", "relu#0", "relu#1"}
    assert no_hooks_left(net)


def test_capture_refuses_a_repeated_module_and_leaves_no_hook(batch):
    net = Twice().eval()
    before = snapshot(net)
    with pytest.raises(ProbeUsageError, match="'conv#0', 'conv#1'"):
        probe.capture(net, batch, ["bn", "conv"])
    assert no_hooks_left(net)
    assert_unchanged(net, before)
    captured = probe.capture(net, batch, ["conv#1"])
    assert torch.allclose(captured["conv#1"], per_call(net, batch, "conv")[1])


def test_capture_learns_call_counts_in_one_whole_pass_then_stops_early(batch):
    net = Twice().eval()
    calls = []
    handle = net.head.register_forward_hook(lambda m, a, out: calls.append(1))
    probe.capture(net, batch, ["bn"])  # not provably once (a custom forward): the first capture runs it all
    probe.capture(net, batch, ["bn"])
    handle.remove()
    assert len(calls) == 1


def test_capture_runs_the_model_once_while_it_counts_calls(batch):
    counted = Twice().train()
    calls = []
    handle = counted.conv.register_forward_hook(lambda m, a, out: calls.append(1))
    probe.capture(counted, batch, ["bn"])  # the first capture of "bn" runs the whole pass and counts calls
    handle.remove()
    assert len(calls) == 2  # conv runs twice in one pass: one pass
    assert counted.bn.num_batches_tracked == 0 and counted.training  # in eval mode: no statistic moved


def test_layers_counts_calls():
    rows = {row.name: row for row in probe.layers(Twice(), (3, 8, 8))}
    assert rows["relu"].calls == 2 and rows["relu"].output_shape == (3, 8, 8)
    assert rows["bn"].calls == 1 and rows["head"].output_shape == (2, 8, 8)


def test_capture_learns_calls_even_when_the_head_cannot_take_the_input_size():
    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)
            self.fc = torch.nn.Linear(2 * 16 * 16, 3)  # for 16 px only

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).flatten(1))

    net = Head().eval()
    big = torch.rand(1, 3, 24, 24)
    for _ in range(2):  # learning pass (the head fails after conv ran), then a pass that stops at conv
        assert probe.capture(net, big, "conv")["conv"].shape == (1, 2, 24, 24)
    with pytest.raises(ModelInputError, match="mat1 and mat2"):
        probe.capture(net, big, ["conv", "fc"])  # a layer asked for fails: the model's error, as a size error
    assert no_hooks_left(net)


def test_feature_maps_show_every_call_of_a_repeated_module():
    maps = probe.feature_maps(Twice().eval(), torch.rand(3, 8, 8), layers=["relu", "bn"], size=8)
    assert list(maps.maps) == ["relu#0", "relu#1", "bn"]
    assert maps.maps["bn"].min() < 0  # recorded before the in-place ReLU after it


class Sometimes(torch.nn.Module):
    """conv -> (in place ReLU only when the batch's mean is positive) -> conv: a rewrite that depends on the data."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.drop = torch.nn.Dropout(0.0)  # a module that trains: record cannot run a training pass again
        self.head = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.conv(x))
        return self.head(out.relu_() if x.mean() > 0 else out.relu())


def clones_in_capture(net, batch, layers):
    """``(outputs, number of clones capture took)``."""
    acts = {}
    clones = clones_while(lambda: acts.update(probe.capture(net, batch, layers)))
    return acts, clones


@pytest.mark.parametrize("inplace", [False, True])
def test_capture_learns_which_outputs_are_rewritten_and_copies_only_those(batch, inplace):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(inplace=inplace), torch.nn.Conv2d(4, 2, 1)).eval()
    conv = net[0](batch)
    for _ in range(3):
        acts, clones = clones_in_capture(net, batch, ["0", "2"])
        assert torch.allclose(acts["0"], conv) and acts["0"].min() < 0  # the value before the ReLU, every time
    assert clones == (1 if inplace else 0)  # after the first pass: a copy only where the ReLU rewrites in place
    assert no_hooks_left(net)


def test_capture_still_copies_when_a_pass_rewrites_what_the_first_did_not(batch):
    net = Sometimes().eval()
    negative, positive = -batch.abs() - 1, batch.abs() + 1
    for images in (negative, negative, positive, positive, negative):
        acts = probe.capture(net, images, ["conv", "head"])
        assert torch.allclose(acts["conv"], net.conv(images)) and acts["conv"].min() < 0


@pytest.mark.parametrize("mode", ["redirected_relu", "write_watch"])
def test_a_models_refusal_through_a_probe_torch_mode_is_still_the_models(mode):
    """cnn-probe's torch modes run every operation of the model; an error the model raises through them is the
    model's (one line about the input size), not an error of cnn-probe's own code."""
    from probe.forward import model_input
    from probe.relu import redirected_relu
    from probe.rewrites import WriteWatch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    x = torch.rand(1, 3, 8, 8, requires_grad=True)  # 2x6x6 features: the head takes 8
    with pytest.raises(ModelInputError, match="mat1 and mat2"):
        with model_input(x), (redirected_relu() if mode == "redirected_relu" else WriteWatch()):
            net(x)


def assert_allclose(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape and torch.allclose(actual, expected, atol=1e-6)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode, torch.enable_grad],
                         ids=["no_grad", "inference_mode", "enable_grad"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_a_rewrite_that_depends_on_the_data_is_read_right_with_the_model_run_once(mode, training) -> None:
    """Passes alike until one rewrites an output in place that the earlier ones left: its value is still what
    the module returned, in every grad mode (inference tensors have no version counter) and in training mode,
    and the model runs once per call (a counting forward hook of the user's sees each pass once)."""
    net = Sometimes().train(training)
    runs: list[int] = []
    handle = net.conv.register_forward_hook(lambda module, args, out: runs.append(1))
    base = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    passes = (-base - 1, -base - 1, base + 1, base + 1, -base - 1)
    try:
        for images in passes:
            with mode(), probe.record(net, ["conv", "head"]) as acts:
                out = net(images)
            assert_allclose(acts["conv"], net.conv(images).detach())
            assert_allclose(acts["head"], out.detach())
            assert acts["conv"].min() < 0
    finally:
        handle.remove()
    assert len(runs) == 2 * len(passes)  # each pass once, and each check above once
    assert no_hooks_left(net)


def test_names_are_resolved_once_and_again_when_a_layer_is_replaced_or_removed(model, batch, monkeypatch):
    import gc
    import weakref

    from probe.hooks import capture, evaluating

    walks = []
    original = torch.nn.Module.named_modules

    def named_modules(self, *args, **kwargs):
        if self is model:
            walks.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "named_modules", named_modules)
    with evaluating(model):  # a render loop's steps: the old code listed every module at each
        capture(model, batch, ["conv2", "output"])
        walks.clear()
        for _ in range(3):
            capture(model, batch, ["conv2", "output"])
        assert walks == []
    model.conv2 = torch.nn.Conv2d(4, 6, 3, padding=1)  # the same name, another layer: found, not the old one
    with torch.no_grad():
        model.conv2.weight.zero_()
        model.conv2.bias.fill_(2.0)
        assert torch.equal(capture(model, batch, ["conv2", "output"])["conv2"], torch.full((2, 6, 8, 8), 2.0))
    del model.conv2
    with pytest.raises(ProbeUsageError, match="unknown layer 'conv2'"):
        capture(model, batch, ["conv2", "output"])
    monkeypatch.undo()

    def remembered() -> weakref.ref:
        from tinynets import tiny

        net = tiny()
        capture(net, batch, ["conv2", "output"])
        return weakref.ref(net)

    alive = remembered()
    gc.collect()
    assert alive() is None  # what was remembered does not keep the model alive
