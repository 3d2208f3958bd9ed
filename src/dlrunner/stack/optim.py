"""One optimizer update for K trials at once, each with its own hyperparameters.

The same arithmetic as the solo optimizers (``dlrunner.optim``), written over the (K, P)
parameter tensor of a ``StackedModel`` with per-trial (K, 1) columns for lr, beta, eps and the
L2 weight decay; so a trial in a stack takes the steps its solo run takes, up to rounding:

  sgd / gd   W -= lr dW                                   (torch.optim.SGD)
  momentum   v = b v + (1-b) dW;  W -= lr v               (the course's form, optim.CourseMomentum)
  rmsprop    s = b s + (1-b) dW^2;  W -= lr dW / (sqrt(s) + eps)          (torch.optim.RMSprop)
  adam       m, v as above; W -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)  (torch.optim.Adam)

with dW += (lambda/m) W on weight matrices (L2 as weight decay, SPEC B4). A trial that has
stopped (early stopping, divergence) is frozen: neither its weights nor its state move.
``solo_state`` turns trial k's state into its solo optimizer's state_dict, for checkpoints.
"""

from __future__ import annotations

import torch

KINDS = {  # the optimizer builders a stack can stand in for, and the hyperparameters each reads
    "dlrunner.optim.build_gd": ("sgd", ()),
    "dlrunner.optim.build_sgd": ("sgd", ()),
    "dlrunner.optim.build_momentum": ("momentum", ("beta",)),
    "dlrunner.optim.build_rmsprop": ("rmsprop", ("beta", "eps")),
    "dlrunner.optim.build_adam": ("adam", ("beta1", "beta2", "eps")),
}
DEFAULTS = {
    "momentum": {"beta": 0.9},
    "rmsprop": {"beta": 0.999, "eps": 1e-8},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}


class StackedOptimizer:
    def __init__(self, target: str, flat: torch.Tensor, settings: list[dict], weight_decay: torch.Tensor):
        """``settings``: each trial's optimizer config; ``weight_decay``: (K, P), lambda/m on weight entries, else 0."""
        self.kind, names = KINDS[target]
        self.flat = flat
        self.weight_decay = weight_decay if bool((weight_decay != 0).any()) else None
        # Each trial's hyperparameters in double precision, as its solo optimizer holds them (Python
        # floats); the (K, 1) columns the step reads are rounded once from them, 1 - beta included.
        values = {name: [float(s.get(name, DEFAULTS[self.kind][name])) for s in settings] for name in names}
        self.hyper64 = {
            name: torch.tensor(v, dtype=torch.float64, device=flat.device)[:, None] for name, v in values.items()
        }
        self.hyper = {name: column.to(flat.dtype) for name, column in self.hyper64.items()}
        for name in ("beta", "beta1", "beta2"):
            if name in values:
                self.hyper[f"one_minus_{name}"] = (1 - self.hyper64[name]).to(flat.dtype)
        self.state = {
            name: torch.zeros_like(flat)
            for name in {
                "sgd": (),
                "momentum": ("velocity",),
                "rmsprop": ("square_avg",),
                "adam": ("exp_avg", "exp_avg_sq"),
            }[self.kind]
        }
        self.scratch = torch.empty_like(flat) if self.kind == "rmsprop" else None  # reused: see step()
        # per trial (frozen trials stop counting); double, for Adam's bias corrections
        self.steps = torch.zeros(flat.shape[0], 1, device=flat.device, dtype=torch.float64)

    @torch.no_grad()
    def step(self, lr: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """One update with ``lr`` (K, 1); ``active`` (K, 1) bool, None when every trial is training.
        In-place operations on the (K, P) tensors: each one is a pass over every trial's weights."""
        W, g = self.flat, self.flat.grad
        if self.weight_decay is not None:
            g = g.addcmul_(self.weight_decay, W)  # dW + (lambda/m) W, in the gradient's own memory
        before = None if active is None else {name: s.clone() for name, s in self.state.items()}
        self.steps += 1 if active is None else active
        h = self.hyper
        # Every intermediate lives in the gradient's memory (g is not needed after the step): a fresh
        # (K, P) tensor per operation costs more than the arithmetic on the CPU, where glibc maps and
        # unmaps each one (measured for K=16 MLP trials: 1.4 ms per Adam step with temporaries, 0.35 without).
        if self.kind == "sgd":
            update = g.mul_(lr)
        elif self.kind == "momentum":
            update = torch.mul(self.state["velocity"].lerp_(g, h["one_minus_beta"]), lr, out=g)  # b v + (1-b) dW
        elif self.kind == "rmsprop":
            # torch.optim.RMSprop's operations in its order, so that each trial rounds as its solo run:
            # s = b s + ((1-b) dW) dW (addcmul_, one fused multiply-add), W -= (lr dW) / (sqrt(s) + eps).
            s = self.state["square_avg"].mul_(h["beta"])
            s.addcmul_(torch.mul(g, h["one_minus_beta"], out=self.scratch), g)
            update = g.mul_(lr).div_(torch.sqrt(s, out=self.scratch).add_(h["eps"]))
        else:
            m = self.state["exp_avg"].lerp_(g, h["one_minus_beta1"])
            v = self.state["exp_avg_sq"].lerp_(g.mul_(g), h["one_minus_beta2"])
            h64 = self.hyper64  # bias corrections in double, as torch computes them from Python floats
            correction1 = (1 - h64["beta1"] ** self.steps).to(W.dtype)
            correction2 = (1 - h64["beta2"] ** self.steps).sqrt().to(W.dtype)
            # lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps), with the per-trial factors folded into the denominator
            update = torch.div(m, torch.sqrt(v, out=g).div_(correction2).add_(h["eps"]).mul_(correction1 / lr), out=g)
        if active is None:
            W.sub_(update)
        else:  # a NaN in a frozen trial's update must not reach its weights: where, not a multiplication
            W.sub_(torch.where(active, update, torch.zeros((), device=W.device, dtype=W.dtype)))
            for name, s in self.state.items():
                s.copy_(torch.where(active, s, before[name]))

    def solo_state(self, k: int, names: list[str], sizes: list[int], shapes: list, groups: list[list[int]]) -> dict:
        """Trial k's optimizer state in the form its solo optimizer's ``state_dict()`` has.

        ``groups``: the parameter indices (in the architecture's order) of each solo param group.
        Only the state: the caller merges it into a fresh solo optimizer's state_dict (param_groups)."""
        if self.kind == "sgd":  # plain SGD keeps no state
            return {}
        per_parameter = {}
        rows = {name: s[k].split(sizes) for name, s in self.state.items()}
        step = float(self.steps[k, 0])
        order = [i for group in groups for i in group]
        for position, i in enumerate(order):
            entry = {name: rows[name][i].view(shapes[i]).clone() for name in self.state}
            if self.kind in ("adam", "rmsprop"):
                entry["step"] = torch.tensor(step)
            per_parameter[position] = entry
        return per_parameter
