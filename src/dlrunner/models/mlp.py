"""Logistic regression and the L-layer network of course 1 (SPEC A3, A6, A8-A10, B6, B11, D6-D9)."""

from __future__ import annotations

import math

import torch
from torch import nn

from dlrunner.errors import ConfigError, Problem
from dlrunner.models.choices import ACTIVATIONS, INITS


def init_std(scheme: str, n_in: int, n_out: int) -> float:
    """Standard deviation of W[l] ~ N(0, std^2) for the course's named schemes (SPEC A9, B11).

    he: sqrt(2/n[l-1]) for ReLU; xavier: sqrt(1/n[l-1]) for tanh (the course's name for it);
    glorot: sqrt(2/(n[l-1]+n[l])); small_random: 0.01; zeros: 0 (shows the symmetry problem).
    """
    return {
        "he": math.sqrt(2.0 / n_in),
        "xavier": math.sqrt(1.0 / n_in),
        "glorot": math.sqrt(2.0 / (n_in + n_out)),
        "small_random": 0.01,
        "zeros": 0.0,
    }[scheme]


def initialise(model: nn.Module, scheme: str) -> None:
    """W ~ N(0, std^2) with the scheme's std, b = 0, for every linear and convolution layer;
    'pytorch' keeps torch's default. A convolution's n[l-1] is its fan-in, f*f*n_c[l-1]."""
    if scheme == "pytorch":
        return
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                if scheme == "zeros":
                    layer.weight.zero_()
                else:
                    fan_in = layer.weight[0].numel()
                    fan_out = layer.weight.numel() // layer.weight.shape[1]
                    layer.weight.normal_(0.0, init_std(scheme, fan_in, fan_out))
                if layer.bias is not None:
                    layer.bias.zero_()


def activation_layer(name: str, leaky_slope: float) -> nn.Module:
    return {
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(leaky_slope),
        "linear": nn.Identity,
    }[name]()


def build_logreg(init: str = "zeros", *, n_inputs: int, n_outputs: int) -> nn.Module:
    """Logistic regression: z = Wx + b (sigmoid or softmax applied by the loss). Zero init is fine here."""
    return build_mlp(layers=[], activation="linear", init=init, n_inputs=n_inputs, n_outputs=n_outputs)


def build_mlp(
    layers: list[int],
    activation: str | list[str] = "relu",
    init: str = "he",
    leaky_slope: float = 0.01,
    batch_norm: bool = False,
    keep_prob: float | list[float] = 1.0,
    input_keep_prob: float = 1.0,
    *,
    n_inputs: int,
    n_outputs: int,
) -> nn.Sequential:
    """An L-layer fully connected network: for each hidden size n[l] in ``layers``,
    Linear -> [BatchNorm on z] -> activation -> [inverted dropout], then a linear output layer.

    Args:
        layers: hidden units per layer, e.g. [5, 5, 3] for the course's n = [n_x, 5, 5, 3, 1].
        activation: one name for every hidden layer or one per layer (sigmoid, tanh, relu,
            leaky_relu, linear).
        init: he | xavier | glorot | small_random | zeros | pytorch (SPEC B11).
        batch_norm: normalise z before the activation; the linear layer's bias is dropped since
            batch norm's beta replaces it (SPEC D6).
        keep_prob: dropout keep probability per hidden layer (one value, or one per layer).
        input_keep_prob: keep probability of the input features.

    Example:
        >>> build_mlp([100, 100], "relu", n_inputs=40, n_outputs=10)  # MNIST-1D's 2x100 MLP
    """
    layers = list(layers)
    activations = _per_layer(activation, len(layers), "model.activation")
    keep_probs = _per_layer(keep_prob, len(layers), "model.keep_prob")
    _check_choices(activations, ACTIVATIONS, "model.activation")
    _check_choices([init], INITS, "model.init")
    modules: list[nn.Module] = [nn.Flatten()]
    if input_keep_prob < 1:
        modules.append(nn.Dropout(1 - input_keep_prob))  # nn.Dropout is inverted dropout
    width = n_inputs
    for units, act, keep in zip(layers, activations, keep_probs):
        modules.append(nn.Linear(width, units, bias=not batch_norm))
        if batch_norm:
            modules.append(nn.BatchNorm1d(units))
        modules.append(activation_layer(act, leaky_slope))
        if keep < 1:
            modules.append(nn.Dropout(1 - keep))
        width = units
    modules.append(nn.Linear(width, n_outputs))
    model = nn.Sequential(*modules)
    initialise(model, init)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def weight_matrices(model: nn.Module) -> list[torch.nn.Parameter]:
    """The parameters L2 applies to: trainable weight matrices and kernels, not biases or batch-norm's gamma/beta."""
    return [p for p in model.parameters() if p.ndim > 1 and p.requires_grad]


def _per_layer(value, n_layers: int, key: str) -> list:
    if isinstance(value, (str, int, float)):
        return [value] * n_layers
    value = list(value)
    if len(value) != n_layers:
        raise ConfigError(
            Problem(key, value, f"one value for all layers, or exactly one per hidden layer ({n_layers})")
        )
    return value


def _check_choices(values, valid, key) -> None:
    bad = [v for v in values if v not in valid]
    if bad:
        raise ConfigError(Problem(key, bad[0], f"one of {list(valid)}"))
