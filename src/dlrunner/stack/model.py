"""K models of one architecture as one: every trial's parameters in one (K, P) tensor.

Each trial's model is built exactly as a solo run builds it (same seed, same initialisation);
``StackedModel`` copies their parameters into the rows of one (K, P) tensor ``flat`` and runs the
architecture once for all K: linear layers (and, on the CPU, 1-D convolutions) as batched matrix
products, other models through ``torch.func.vmap`` over ``functional_call`` (see ``_forwards``
for which runs how). The loss of the stack is the
sum of the trials' losses, so row k of each parameter's gradient is exactly trial k's, and one
optimizer update serves every trial (``dlrunner.stack.optim``).

Dropout keeps its own probability per trial: each ``nn.Dropout`` becomes a ``TrialDropout``
that reads the trial's keep probability from a stacked buffer, and each trial gets its own mask.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.func import functional_call, vmap

from dlrunner.internals import CONVOLUTION
from dlrunner.models import conv1d


class TrialDropout(nn.Module):
    """Inverted dropout whose keep probability is a buffer, so each trial of a stack has its own."""

    def __init__(self):
        super().__init__()
        self.register_buffer("keep", torch.ones(()))

    def forward(self, x):
        if not self.training:
            return x
        return x * (torch.rand_like(x) < self.keep) / self.keep


def structure(model: nn.Module) -> tuple:
    """What must be equal for models to share a stack: module types and parameter shapes."""
    modules = tuple(type(m).__name__ for m in model.modules())
    shapes = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
    return modules, shapes


class StackedModel:
    def __init__(self, models: list[nn.Module]):
        base = models[0]
        self.k = len(models)
        self.names = [name for name, _ in base.named_parameters()]
        self.shapes = [p.shape for p in base.parameters()]
        self.sizes = [p.numel() for p in base.parameters()]
        self.device = next(base.parameters()).device
        with torch.no_grad():
            rows = [torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in models]
        self.flat = torch.stack(rows)  # (K, P): the optimizer updates it in place
        # The leaves autograd fills: one (K, *shape) view of ``flat`` per parameter. Each gradient comes out
        # of its own product in its own tensor; views taken per step would make autograd concatenate them
        # into one (K, P) tensor at every backward pass (measured for K=16 MLP trials: 7% of a step).
        chunks = self.flat.split(self.sizes, 1)
        self.leaves = [chunk.view(self.k, *shape).requires_grad_() for chunk, shape in zip(chunks, self.shapes)]
        # Which entries are weight matrices/kernels (L2 applies to them, as in optim.parameter_groups).
        self.weight_mask = torch.cat(
            [torch.full((n,), float(len(s) > 1), device=self.device) for n, s in zip(self.sizes, self.shapes)]
        )

        self.base = copy.deepcopy(base)
        self.buffers = {}
        for path, module in list(base.named_modules()):
            if isinstance(module, nn.Dropout):
                _replace(self.base, path, TrialDropout())
                keeps = [1.0 - _module(m, path).p for m in models]
                self.buffers[f"{path}.keep"] = torch.tensor(keeps, device=self.device)
        self.model_buffer_names = [name for name, _ in base.named_buffers()]
        for name in self.model_buffer_names:
            self.buffers[name] = torch.stack([dict(m.named_buffers())[name] for m in models])
        # Where the linear layers of a stack of Sequentials write their gradients (``StackedLinear``):
        # the same tensors at every step, so the optimizer takes each trial's views of them once.
        self.gradient_into: dict[str, torch.Tensor] = {}
        self._per_trial_inputs, self._shared_inputs = self._forwards(base)

    def _forwards(self, base: nn.Module):
        """The two ways to run the stack (per-trial inputs, shared inputs), picked by what is fastest:

        - a Sequential of linear layers and elementwise modules (the MLP, logistic regression): batched
          matrix products written out (``baddbmm``), ~20% faster than vmap on the CPU;
        - on the CPU, the same with 1-D convolutions as batched matrix products too
          (``dlrunner.models.conv1d``) and pooling per example: the course's 1-D CNNs;
        - other convolutions on the CPU: each trial's forward pass on its own (vmap would turn K
          convolutions into one grouped convolution, which oneDNN runs ~2.7x slower than K separate
          ones: measured for a 1-D conv of 25 channels, K = 16), still sharing the loss, backward pass
          and update;
        - anything else: ``torch.func.vmap`` over ``functional_call``.
        """
        call = lambda params, buffers, x: functional_call(self.base, {**params, **buffers}, (x,))  # noqa: E731
        layers = sequential_layers(self.base, on_cpu=self.device.type == "cpu")
        if layers is not None:
            runs = [id(module) for _, module in layers]
            for name, module in layers:
                # a layer that runs twice adds two gradients: autograd sums them, so it keeps them
                if isinstance(module, nn.Linear) and runs.count(id(module)) == 1:
                    for kind in ("weight", "bias"):
                        if f"{name}.{kind}" in self.names:
                            leaf = self.leaves[self.names.index(f"{name}.{kind}")]
                            self.gradient_into[f"{name}.{kind}"] = torch.zeros_like(leaf, requires_grad=False)
            into = self.gradient_into
            return (
                lambda params, buffers, x: sequential_stack(layers, params, buffers, x, shared=False, into=into),
                lambda params, buffers, x: sequential_stack(layers, params, buffers, x, shared=True),
            )
        if self.device.type == "cpu" and any(isinstance(m, CONVOLUTION) for m in base.modules()):

            def each(params, buffers, x, shared):
                return torch.stack(
                    [
                        call(
                            {n: v[k] for n, v in params.items()},
                            {n: v[k] for n, v in buffers.items()},
                            x if shared else x[k],
                        )
                        for k in range(len(next(iter(params.values()))))  # the trials evaluated
                    ]
                )

            return (
                lambda params, buffers, x: each(params, buffers, x, False),
                lambda params, buffers, x: each(params, buffers, x, True),
            )
        return (
            vmap(call, in_dims=(0, 0, 0), randomness="different"),
            vmap(call, in_dims=(0, 0, None), randomness="different"),
        )

    def parameters_by_name(self) -> dict[str, torch.Tensor]:
        """The leaves: views of ``flat``, one (K, *shape) tensor per parameter of the architecture."""
        return dict(zip(self.names, self.leaves))

    def zero_grad(self) -> None:
        for leaf in self.leaves:
            leaf.grad = None

    def gradients(self) -> list[torch.Tensor]:
        """Each parameter's (K, *shape) gradient from the last backward pass (zeros where it had none)."""
        gradients = []
        for name, leaf in zip(self.names, self.leaves):
            if name in self.gradient_into:  # written there by its layer (StackedLinear), not given to autograd
                gradients.append(self.gradient_into[name])
            else:
                gradients.append(torch.zeros_like(leaf) if leaf.grad is None else leaf.grad)
        return gradients

    def train_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (K, B, ...) for per-trial mini-batches x of shape (K, B, ...)."""
        self.base.train()
        return self._per_trial_inputs(self.parameters_by_name(), self.buffers, x)

    @torch.no_grad()
    def eval_forward(self, x: torch.Tensor, rows: list[int] | None = None) -> torch.Tensor:
        """Scores (R, N, ...) of the trials ``rows`` (None: all K) on the same inputs x (N, ...), in
        eval mode: the trials of a stack that joined it at different steps evaluate at different steps."""
        self.base.eval()
        params, buffers = self.parameters_by_name(), self.buffers
        if rows is not None and len(rows) < self.k:
            index = torch.tensor(rows, device=self.device)
            params = {name: value.index_select(0, index) for name, value in params.items()}
            buffers = {name: value.index_select(0, index) for name, value in buffers.items()}
        return self._shared_inputs(params, buffers, x)

    def state_dict(self, k: int, row: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Trial k's weights as its solo model's state_dict: its row of ``flat``, or a saved copy of that row."""
        row = (self.flat[k] if row is None else row).detach()
        state = {name: c.view(shape).clone() for name, c, shape in zip(self.names, row.split(self.sizes), self.shapes)}
        for name in self.model_buffer_names:
            state[name] = self.buffers[name][k].clone()
        return state


ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity)
PER_EXAMPLE = (
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveAvgPool1d,
)  # no parameters: run on (K*N, ...)


def sequential_layers(base: nn.Module, on_cpu: bool) -> list[tuple[str, nn.Module]] | None:
    """(name, module) of the layers of ``base`` in the order they run, if ``sequential_stack`` can
    run them all: Sequentials (nested ones too) of linear, elementwise and dropout modules, and on
    the CPU also plain 1-D convolutions and 1-D pooling; None otherwise."""
    if not isinstance(base, nn.Sequential):
        return None
    layers = []
    first_path = {}  # a module used twice runs twice, with the parameters named by its first path
    for path, module in base.named_modules(remove_duplicate=False):
        name = first_path.setdefault(id(module), path)
        if isinstance(module, nn.Sequential):
            if type(module) is not nn.Sequential:  # a subclass may run its children differently
                return None
            continue
        if not (
            isinstance(module, (nn.Flatten, nn.Linear, TrialDropout, *ELEMENTWISE))
            or (on_cpu and (isinstance(module, PER_EXAMPLE) or conv1d.supports(module)))
        ):
            return None
        layers.append((name, module))
    return layers


class StackedLinear(torch.autograd.Function):
    """x W^T + b for K trials at once: x (K, B, in), W (K, out, in), b (K, out) or None.

    Autograd's own backward of ``baddbmm(b, x, W.transpose(1, 2))`` makes dW as (K, in, out) and
    transposes it, so every step copies it once more; here dW = g^T x
    comes out in W's own layout. Measured for K=16 MLP trials: a step 5.9 -> 5.3 ms (median of 5).

    ``into``: None, or the (weight, bias) tensors (bias None without one) that the backward pass
    writes dW and db into, the same at every step, in place of handing autograd fresh ones: the
    optimizer then takes each trial's views of them once, not at every step (for K = 16 MLP trials
    ~6% of a step, measured alternating with fresh gradients)."""

    @staticmethod
    def forward(ctx, x, weight, bias, into):
        ctx.save_for_backward(x, weight)
        ctx.into = into
        transposed = weight.transpose(1, 2)
        return torch.bmm(x, transposed) if bias is None else torch.baddbmm(bias[:, None, :], x, transposed)

    @staticmethod
    @once_differentiable  # its backward is not itself differentiable: say so rather than be wrong
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        if ctx.into is not None:
            weight_into, bias_into = ctx.into
            torch.bmm(grad.transpose(1, 2), x, out=weight_into)
            if bias_into is not None:
                torch.sum(grad, 1, out=bias_into)
            return grad_x, None, None, None
        grad_weight = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None


def sequential_stack(
    layers: list, params: dict, buffers: dict, x: torch.Tensor, shared: bool, into: dict | None = None
) -> torch.Tensor:
    """The ``layers`` of ``sequential_layers`` for K trials: x is (K, B, ...), or (B, ...) shared by
    every trial; returns (K, B, outputs). ``into``: the tensors the linear layers' gradients go to
    (``StackedModel.gradient_into``), by parameter name."""
    into = into or {}
    for name, module in layers:
        if isinstance(module, nn.Flatten):
            x = x.flatten(1 if shared else 2)
        elif isinstance(module, nn.Linear):  # x W^T + b, every trial with its own W and b
            weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
            if shared:  # (B, in) @ (K, in, out): one product per trial against the same inputs
                x, shared = torch.matmul(x, weight.transpose(1, 2)), False
                x = x if bias is None else x + bias[:, None, :]
            else:
                weight_into = into.get(f"{name}.weight")
                targets = None if weight_into is None else (weight_into, into.get(f"{name}.bias"))
                x = StackedLinear.apply(x, weight, bias, targets)
        elif isinstance(module, nn.Conv1d):
            weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
            if shared:
                x, shared = x.expand(len(weight), *x.shape), False
            # Every plain Conv1d, whatever its size: the products replace K calls of oneDNN here
            # (the solo size limits weigh them against one call), and they paid at K = 4 to 64.
            x = conv1d.conv1d_matmul(x, weight, bias, module.stride[0], module.padding[0])
        elif isinstance(module, TrialDropout):
            if module.training:  # each trial's own rate, each its own mask
                keep = buffers[f"{name}.keep"]
                if shared:
                    x, shared = x.expand(len(keep), *x.shape), False
                keep = keep.view(-1, *[1] * (x.dim() - 1))
                x = x * (torch.rand_like(x) < keep) / keep
        elif isinstance(module, PER_EXAMPLE) and not shared:  # pooling: the K trials' examples as one batch
            x = module(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        else:  # elementwise (any shape), or pooling of shared inputs
            x = module(x)
    return x


def _module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path) if path else root


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(_module(root, parent), name, new)
