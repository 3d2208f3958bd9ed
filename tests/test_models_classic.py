"""The classic CNNs (SPEC F8-F13): published parameter counts, small-input adaptation, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlrunner.errors import ConfigError
from dlrunner.models.classic import (
    BasicBlock,
    Bottleneck,
    DepthwiseSeparable,
    Inception,
    build_alexnet,
    build_googlenet,
    build_lenet5,
    build_mobilenet,
    build_resnet,
    build_vgg,
)
from dlrunner.models.mlp import count_parameters

IMAGENET = (3, 224, 224)
ALL_BUILDERS = [build_lenet5, build_alexnet, build_vgg, build_resnet, build_googlenet, build_mobilenet]


def on_meta(builder, **kwargs) -> nn.Module:
    """Build without allocating or initialising real weights: counting parameters needs only shapes."""
    with torch.device("meta"):
        return builder(**kwargs)


@pytest.mark.parametrize(
    ("builder", "kwargs", "expected"),
    [
        (build_lenet5, dict(input_shape=(1, 32, 32), n_outputs=10), 61_706),
        (build_alexnet, dict(input_shape=(3, 227, 227), n_outputs=1000), 62_378_344),
        (build_vgg, dict(depth=16, input_shape=IMAGENET, n_outputs=1000), 138_357_544),
        (build_vgg, dict(depth=19, input_shape=IMAGENET, n_outputs=1000), 143_667_240),
        (build_resnet, dict(depth=18, input_shape=IMAGENET, n_outputs=1000), 11_689_512),
        (build_resnet, dict(depth=34, input_shape=IMAGENET, n_outputs=1000), 21_797_672),
        (build_resnet, dict(depth=50, input_shape=IMAGENET, n_outputs=1000), 25_557_032),
        # Paper's Table 1 says ~6.8M; ours has batch norm (14,560) and a real 5x5 in every module.
        (build_googlenet, dict(input_shape=IMAGENET, n_outputs=1000), 7_005_832),
        (build_mobilenet, dict(input_shape=IMAGENET, n_outputs=1000), 4_231_976),
    ],
    ids=["lenet5", "alexnet", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "googlenet", "mobilenet"],
)
def test_published_parameter_counts_and_no_notes_at_canonical_size(builder, kwargs, expected):
    model = on_meta(builder, **kwargs)
    assert count_parameters(model) == expected
    assert model.notes == []


def test_lenet5_forward_at_its_canonical_size_keeps_the_paper_shapes():
    model = build_lenet5(input_shape=(1, 32, 32), n_outputs=10)
    features = model.features(torch.randn(2, 1, 32, 32))
    assert features.shape == (2, 16, 5, 5)  # flatten -> 400
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_vgg_batch_norm_and_width_change_the_count():
    plain = count_parameters(on_meta(build_vgg, input_shape=IMAGENET, n_outputs=1000))
    with_bn = count_parameters(on_meta(build_vgg, batch_norm=True, input_shape=IMAGENET, n_outputs=1000))
    assert with_bn == plain + 2 * (2 * 64 + 2 * 128 + 3 * 256 + 6 * 512)  # gamma and beta per channel
    thin = on_meta(build_vgg, width=0.25, fc_units=64, input_shape=(3, 32, 32), n_outputs=10)
    assert count_parameters(thin) < 1_000_000


def _case_id(value) -> str | None:
    return value.__name__.removeprefix("build_") if callable(value) else None


# (builder, config, input shape, n_outputs): 1 output is the binary case, 3 a multiclass one.
SMALL_CASES = [
    (build_lenet5, {}, (1, 8, 8), 1),
    (build_lenet5, dict(activation="relu", pooling="max"), (1, 28, 28), 3),
    (build_lenet5, {}, (3, 32, 32), 1),
    (build_alexnet, dict(fc_units=32), (1, 8, 8), 3),
    (build_alexnet, dict(fc_units=32), (3, 32, 32), 1),
    (build_vgg, dict(width=0.125, fc_units=32), (1, 8, 8), 3),
    (build_vgg, dict(depth=19, width=0.125, fc_units=32, batch_norm=True), (3, 32, 32), 1),
    (build_resnet, dict(width=8), (1, 8, 8), 3),
    (build_resnet, dict(depth=34, width=4), (3, 32, 32), 1),
    (build_resnet, dict(depth=50, width=4), (1, 28, 28), 3),
    (build_googlenet, dict(width=0.125), (1, 8, 8), 1),
    (build_googlenet, dict(width=0.125), (3, 32, 32), 3),
    (build_mobilenet, dict(width=0.125), (1, 8, 8), 1),
    (build_mobilenet, dict(width=0.125), (1, 28, 28), 3),
    (build_mobilenet, dict(width=0.125), (3, 32, 32), 1),
]


@pytest.mark.parametrize(("builder", "kwargs", "shape", "n_outputs"), SMALL_CASES, ids=_case_id)
def test_small_inputs_train_and_give_one_score_per_class(builder, kwargs, shape, n_outputs):
    torch.manual_seed(0)
    model = builder(**kwargs, input_shape=shape, n_outputs=n_outputs)
    model.train()
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, n_outputs)
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    assert model(torch.randn(2, *shape)).shape == (2, n_outputs)


@pytest.mark.parametrize(
    ("builder", "shape", "words"),
    [
        (build_lenet5, (1, 8, 8), ["32x32", "'same' padding", "5x5"]),
        (build_lenet5, (1, 28, 28), ["conv1 uses 'same' padding"]),
        (build_alexnet, (3, 32, 32), ["3x3 stride-1", "6x6"]),
        (build_alexnet, IMAGENET, ["5x5 map", "6x6"]),  # 224 is not AlexNet's 227
        (build_vgg, (3, 32, 32), ["1x1", "512 features"]),
        (build_vgg, (1, 8, 8), ["2 of its 5 max pools are skipped"]),
        (build_resnet, (3, 32, 32), ["CIFAR-style"]),
        (build_googlenet, (3, 32, 32), ["3x3 stride-1"]),
        (build_mobilenet, (3, 32, 32), ["last 4 of its 5 stride-2", "2x2"]),
    ],
)
def test_small_inputs_are_adapted_and_the_notes_say_how(builder, shape, words):
    notes = on_meta(builder, input_shape=shape, n_outputs=10).notes
    assert len(notes) == 1 and isinstance(notes[0], str)
    for word in words:
        assert word in notes[0]


@pytest.mark.parametrize(
    ("builder", "kwargs"),
    [
        (build_alexnet, dict(fc_units=16)),
        (build_vgg, dict(width=0.0625, fc_units=16)),
        (build_resnet, dict(depth=50, width=4)),
        (build_googlenet, dict(width=0.0625, aux_heads=True)),
        (build_mobilenet, dict(width=0.125)),
    ],
    ids=_case_id,
)
def test_64x64_inputs_run_through_the_published_stems(builder, kwargs):
    model = builder(**kwargs, input_shape=(3, 64, 64), n_outputs=4).eval()
    assert not any("stride-1" in note or "stride 1" in note for note in model.notes)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4)


def test_lenet5_at_28x28_is_the_classic_mnist_variant():
    # conv1 padded: 28 -> 28 -> 14 -> 10 -> 5, so no adaptive pooling is needed.
    model = build_lenet5(input_shape=(1, 28, 28), n_outputs=10)
    assert model.features(torch.randn(1, 1, 28, 28)).shape == (1, 16, 5, 5)
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())
    assert count_parameters(model) == 61_706


def test_resnet_stem_choice():
    small = on_meta(build_resnet, stem="small", input_shape=IMAGENET, n_outputs=10)
    assert small.notes == []  # chosen by the user, not adapted
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())
    forced = build_resnet(stem="imagenet", width=4, input_shape=(1, 8, 8), n_outputs=2)
    assert forced.notes == [] and forced(torch.randn(2, 1, 8, 8)).shape == (2, 2)


def test_googlenet_aux_heads_only_in_training():
    model = build_googlenet(aux_heads=True, width=0.125, input_shape=(3, 32, 32), n_outputs=5)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 3
    assert all(o.shape == (2, 5) for o in out)
    (out[0] + 0.3 * out[1] + 0.3 * out[2]).sum().backward()
    assert model.aux1[-1].weight.grad is not None and model.aux2[-1].weight.grad is not None
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)
    assert isinstance(build_googlenet(width=0.125, input_shape=(3, 32, 32), n_outputs=5).train()(x), torch.Tensor)


@pytest.mark.parametrize("builder", ALL_BUILDERS)
def test_the_output_layer_is_the_last_layer_with_parameters(builder):
    # Transfer learning replaces "the last layer with parameters"; GoogLeNet's side heads must not be it.
    kwargs = dict(aux_heads=True) if builder is build_googlenet else {}
    model = on_meta(builder, **kwargs, input_shape=(3, 32, 32), n_outputs=7)
    last = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))][-1]
    assert isinstance(last, nn.Linear) and last.out_features == 7
    if builder is build_googlenet:
        assert last is model.head[-1]


def test_aux_heads_add_parameters():
    plain = count_parameters(on_meta(build_googlenet, input_shape=IMAGENET, n_outputs=1000))
    aux = count_parameters(on_meta(build_googlenet, aux_heads=True, input_shape=IMAGENET, n_outputs=1000))
    assert aux == 13_385_816 and aux > plain


def test_blocks_are_public_and_keep_or_project_the_shortcut():
    x = torch.randn(2, 8, 6, 6)
    same = BasicBlock(8, 8)
    assert isinstance(same.shortcut, nn.Identity) and same(x).shape == (2, 8, 6, 6)
    down = BasicBlock(8, 16, stride=2)
    assert isinstance(down.shortcut, nn.Sequential) and down(x).shape == (2, 16, 3, 3)
    assert Bottleneck(8, 4)(x).shape == (2, 16, 6, 6)  # expansion 4
    assert DepthwiseSeparable(8, 12, 2)(x).shape == (2, 12, 3, 3)
    assert DepthwiseSeparable(8, 12, 1)[0].groups == 8
    inception = Inception(8, 2, 3, 4, 1, 5, 6)
    assert inception.out_channels == 17 and inception(x).shape == (2, 17, 6, 6)
    assert inception.branch5[1][0].kernel_size == (5, 5)  # a real 5x5, not torchvision's 3x3


def test_residual_block_computes_g_of_z_plus_a():
    # With the convolutions' output zeroed, a[l+2] = relu(0 + a[l]) = relu(a[l]) (SPEC F11).
    block = BasicBlock(4, 4).eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(1, 4, 5, 5)
    assert torch.allclose(block(x), torch.relu(x))


@pytest.mark.parametrize("builder", ALL_BUILDERS)
def test_flat_input_is_a_config_error_pointing_at_data_shape(builder):
    with pytest.raises(ConfigError) as err:
        builder(input_shape=(64,), n_outputs=10)
    problem = err.value.problems[0]
    assert problem.key == "data.shape"
    assert "needs images (C, H, W)" in problem.valid and "(64,)" in problem.valid
    assert "data.shape=[1,8,8]" in problem.valid


def test_flat_input_suggestion_uses_the_data_size():
    with pytest.raises(ConfigError, match=r"data.shape=\[3,32,32\]"):
        build_resnet(input_shape=(3072,), n_outputs=10)


@pytest.mark.parametrize(
    ("builder", "kwargs", "key", "valid"),
    [
        (build_resnet, dict(depth=20), "model.depth", "18, 34 or 50"),
        (build_resnet, dict(stem="tiny"), "model.stem", "auto, imagenet or small"),
        (build_resnet, dict(width=0), "model.width", "positive integer"),
        (build_vgg, dict(depth=13), "model.depth", "16 or 19"),
        (build_vgg, dict(width=-1.0), "model.width", "positive"),
        (build_alexnet, dict(dropout=1.0), "model.dropout", "[0, 1)"),
        (build_alexnet, dict(fc_units=0), "model.fc_units", "positive integer"),
        (build_lenet5, dict(activation="swish"), "model.activation", "tanh"),
        (build_lenet5, dict(pooling="median"), "model.pooling", "avg or max"),
        (build_googlenet, dict(aux_heads="yes"), "model.aux_heads", "true or false"),
        (build_mobilenet, dict(width=0), "model.width", "positive"),
    ],
)
def test_bad_config_values_name_the_key_and_what_is_valid(builder, kwargs, key, valid):
    with pytest.raises(ConfigError) as err:
        builder(**kwargs, input_shape=(3, 32, 32), n_outputs=10)
    problem = err.value.problems[0]
    assert problem.key == key and valid in problem.valid


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        build_vgg(depth=11, dropout=2.0, input_shape=(3, 32, 32), n_outputs=10)
    assert [p.key for p in err.value.problems] == ["model.depth", "model.dropout"]
