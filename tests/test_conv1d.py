"""1-D convolutions as matrix products (models/conv1d.py): the same numbers and gradients as
F.conv1d, for one model and for K stacked trials, and the rule for when a model's Conv1d uses them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlrunner.models.conv1d import MAX_PATCHES, MatmulConv1d, conv1d_matmul

CASES = [
    (1, 40, 5, 2, 1, True),  # the MNIST-1D CNN's first layer
    (3, 17, 4, 1, 2, False),  # an even filter, stride 1, no bias
    (4, 23, 5, 3, 0, True),  # stride 3: the last input positions are read by no output
    (2, 7, 2, 4, 3, True),  # a stride larger than the filter, padding larger than it
    (2, 8, 8, 1, 0, True),  # one output position
]


@pytest.mark.parametrize("channels, length, f, stride, padding, bias", CASES)
def test_one_models_convolution_is_conv1d(channels, length, f, stride, padding, bias):
    """Values against F.conv1d, gradients against numerical ones, in float64."""
    x = torch.randn(5, channels, length, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, channels, f, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True) if bias else None
    got = conv1d_matmul(x, weight, b, stride, padding)
    expected = F.conv1d(x, weight, b, stride, padding)
    assert got.shape == expected.shape and torch.allclose(got, expected)
    assert torch.autograd.gradcheck(lambda x, w, b: conv1d_matmul(x, w, b, stride, padding), (x, weight, b))


@pytest.mark.parametrize("channels, length, f, stride, padding, bias", CASES)
def test_the_stacked_convolution_is_each_trials_conv1d(channels, length, f, stride, padding, bias):
    """K = 3 trials, each with its own filters and inputs: F.conv1d trial by trial; numerical gradients."""
    x = torch.randn(3, 5, channels, length, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 4, channels, f, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, requires_grad=True) if bias else None
    expected = torch.stack([F.conv1d(x[k], weight[k], None if b is None else b[k], stride, padding) for k in range(3)])
    got = conv1d_matmul(x, weight, b, stride, padding)
    assert got.shape == expected.shape and torch.allclose(got, expected)
    assert torch.autograd.gradcheck(lambda x, w, b: conv1d_matmul(x, w, b, stride, padding), (x, weight, b))


def test_a_chain_of_matmul_convolutions_trains_like_nn_conv1d():
    """The MNIST-1D CNN's layers as MatmulConv1d (outputs channels last, read by the next layer,
    through ReLU and a flatten) against nn.Conv1d with the same weights: same loss and gradients."""

    def cnn(conv):
        torch.manual_seed(0)
        return nn.Sequential(
            conv(1, 25, 5, 2, 1),
            nn.ReLU(),
            conv(25, 25, 3, 2, 1),
            nn.ReLU(),
            conv(25, 25, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(125, 10),
        )

    plain, fast = cnn(nn.Conv1d), cnn(MatmulConv1d)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    assert fast[0]._products_pay(torch.zeros(100, 1, 40)) and fast[2]._products_pay(torch.zeros(100, 25, 19))
    assert not fast[0]._products_pay(torch.zeros(4000, 1, 40))  # a large evaluation batch through 1 channel: oneDNN
    x, y = torch.randn(100, 1, 40), torch.randint(0, 10, (100,))
    losses = []
    for model in (plain, fast):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss)
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name


def test_which_convolutions_use_the_products():
    """Small problems, and short filters over at least 16 numbers per receptive field with patches
    up to MAX_PATCHES, on the CPU without autocast; everything else is nn.Conv1d's own convolution."""

    def pays(c_in, f, length=19, batch=100, **kwargs):
        return MatmulConv1d(c_in, 10, f, **kwargs)._products_pay(torch.zeros(batch, c_in, length))

    assert pays(25, 3) and pays(8, 3) and pays(4, 5)
    assert pays(1, 5, length=40)  # small: 100 x 36 x 5 patches
    assert not pays(1, 5, length=200)  # larger, and 5 numbers per field: the product's inner dimension is too short
    assert not pays(25, 3, length=2)  # no output position: nn.Conv1d's own error
    assert not pays(25, 7)  # a long filter
    assert not pays(25, 3, groups=5) and not pays(25, 3, dilation=2) and not pays(25, 3, padding="same")
    assert not pays(25, 3, padding=1, padding_mode="circular")
    assert pays(25, 3, batch=MAX_PATCHES // (17 * 75)) and not pays(25, 3, batch=MAX_PATCHES // (17 * 75) + 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not pays(25, 3)
    with torch.no_grad():  # evaluation: oneDNN's forward, one memory layout through the network
        assert not pays(25, 3)
    conv = MatmulConv1d(25, 8, 3, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # and the module still runs there, as nn.Conv1d
        assert conv(torch.randn(4, 25, 19)).dtype == torch.bfloat16


def test_the_generic_cnn_builds_matmul_convolutions_for_signals():
    from dlrunner.models.cnn import build_cnn

    model = build_cnn([{"type": "conv", "filters": 4, "f": 3}, "relu"], input_shape=(2, 12), n_outputs=3)
    assert type(model[0]) is MatmulConv1d
    images = build_cnn([{"type": "conv", "filters": 4, "f": 3}, "relu"], input_shape=(2, 12, 12), n_outputs=3)
    assert type(images[0]) is nn.Conv2d


def test_in_place_activations_and_wrong_inputs_behave_as_with_nn_conv1d():
    """The output is a tensor of its own, so ReLU(inplace=True) after the layer trains; a wrong
    channel count gets torch's own message."""
    torch.manual_seed(0)
    layer = MatmulConv1d(4, 6, 3, 2, 1)
    plain = nn.Conv1d(4, 6, 3, 2, 1)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(5, 4, 11)
    assert layer._products_pay(x)
    for conv in (layer, plain):
        torch.relu_(conv(x)).sum().backward()
    assert torch.allclose(layer.weight.grad, plain.weight.grad, atol=1e-6)
    with pytest.raises(RuntimeError, match="channels"):
        layer(torch.randn(5, 3, 11))
