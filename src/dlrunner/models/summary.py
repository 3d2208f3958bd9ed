"""A model's layers with their output shapes and parameter counts, like the course's shape tables
(SPEC F8: 32x32x1 -> 28x28x6 -> 14x14x6 -> ...), and the names transfer learning freezes by."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlrunner.internals import CONVOLUTION


@dataclass
class LayerRow:
    index: int | None  # position among the layers that hold parameters (transfer.freeze=N counts these)
    name: str  # the module's dotted name, e.g. "layer1.0.conv1"
    kind: str  # the module's class, e.g. Conv2d
    output_shape: tuple | None  # one example's output, channels first; None when the layer did not run
    params: int
    trainable: int


def parameter_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that hold parameters themselves, in definition order: the 'layers' of the network."""
    return [
        (name, module) for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))
    ]


def layer_type(module: nn.Module) -> str:
    """The layer's type as users know it: dlrunner's faster drop-in versions of torch layers
    (MatmulConv1d) go by the torch name they stand in for (``shown_as``)."""
    return getattr(type(module), "shown_as", type(module).__name__)


def parameter_owner(model: nn.Module, parameter: str) -> str:
    """Which layer a parameter tensor (``1.weight``) belongs to, numbered as in `dlrun summary`'s #
    column: ``layer 0 (Conv1d)``."""
    module_name = parameter.rpartition(".")[0]
    for index, (name, module) in enumerate(parameter_layers(model)):
        if name == module_name:
            return f"layer {index} ({layer_type(module)})"
    return ""


def layer_table(model: nn.Module, input_shape: tuple) -> list[LayerRow]:
    """One row per leaf module (and per module holding parameters), from a forward pass on one
    example in eval mode; output shapes leave out the batch axis."""
    shapes: dict[str, tuple] = {}
    _run_one_example(
        model,
        input_shape,
        {
            module: _recorder(shapes, name)
            for name, module in model.named_modules()
            if name
            and (not any(True for _ in module.children()) or any(True for _ in module.parameters(recurse=False)))
        },
    )
    indices = {name: i for i, (name, _) in enumerate(parameter_layers(model))}
    rows = []
    for name, module in model.named_modules():
        if name not in shapes and not (name and name in indices):
            continue
        own = list(module.parameters(recurse=False))
        rows.append(
            LayerRow(
                indices.get(name),
                name,
                layer_type(module),
                shapes.get(name),
                sum(p.numel() for p in own),
                sum(p.numel() for p in own if p.requires_grad),
            )
        )
    return rows


def _recorder(shapes: dict, name: str):
    def record(module, inputs, output):
        if isinstance(output, (tuple, list)):  # an RNN returns (outputs, state)
            output = output[0]
        if isinstance(output, torch.Tensor):
            shapes[name] = tuple(output.shape[1:])

    return record


def print_layer_table(model: nn.Module, input_shape: tuple, console, title: str = "") -> None:
    """The table as `dlrun summary` prints it, with the totals."""
    from rich.table import Table

    table = Table(title=title or None, show_header=True, header_style="bold", box=None, pad_edge=False)
    for column, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("type", "left"),
        ("output shape", "left"),
        ("parameters", "right"),
    ):
        table.add_column(column, justify=justify)
    table.add_row("", "input", "", " x ".join(map(str, input_shape)), "")
    for row in layer_table(model, input_shape):
        shape = " x ".join(map(str, row.output_shape)) if row.output_shape is not None else ""
        params = f"{row.params:,}" + (" (frozen)" if row.params and not row.trainable else "")
        table.add_row(
            "" if row.index is None else str(row.index), row.name, row.kind, shape, params if row.params else ""
        )
    console.print(table)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = f", {total - trainable:,} frozen" if trainable != total else ""
    console.print(f"Parameters: {total:,} ({trainable:,} trainable{frozen})", highlight=False)


def multiply_adds(model: nn.Module, input_shape: tuple) -> int:
    """Multiply-adds of one example's forward pass through the linear and convolution layers: what
    sets the cost of a step. A convolution's count is its kernel's size times its output's, far
    more than its parameter count (the MNIST-1D CNN: 5.4k parameters, 32k multiply-adds)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        # per output value: one filter (or row), in_channels/groups x kernel
        total += output.numel() * module.weight[0].numel()

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, *CONVOLUTION))]
    _run_one_example(model, input_shape, dict.fromkeys(layers, count))
    return total


def _run_one_example(model: nn.Module, input_shape: tuple, hooks: dict) -> None:
    """One example of zeros through ``model`` in eval mode, with forward hooks {module: hook}."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks.items()]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
