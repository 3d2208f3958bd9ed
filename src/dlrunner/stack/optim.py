"""One optimizer update for K trials at once, each with its own hyperparameters.

Each trial takes the steps its solo optimizer (``dlrunner.optim``) takes, bit for bit: the update
is written over the (K, P) parameter tensor of a ``StackedModel`` with per-trial (K, 1) columns for
lr, beta, eps and the L2 weight decay, in the operations and the order of torch's own kernels, so
that every entry rounds as in its solo run:

  sgd / gd   W += (-lr) dW                                (torch.optim.SGD, fused)
  momentum   v = b v + (1-b) dW;  W += (-lr) v            (the course's form, optim.CourseMomentum)
  rmsprop    s = b s + ((1-b) dW) dW;  W -= (lr dW) / (sqrt(s) + eps)    (torch.optim.RMSprop)
  adam       torch's fused Adam kernel itself, called on each trial's rows (torch.optim.Adam, fused)

with dW += (lambda/m) W on weight matrices (L2 as weight decay, SPEC B4). Adam goes through the
kernel because the kernel rounds the last entries of each tensor (size mod its vector width) in a
scalar loop of its own, which tensor operations cannot follow; without the kernel (another torch)
the written-out form below runs, equal to it elsewhere bit for bit and there up to rounding.

A trial that stops (early stopping, divergence, pruning) leaves the stack, and a trial that joins
it starts with fresh state: ``carry`` moves the staying trials' state into the optimizer of the new
rows. ``solo_state`` turns trial k's state into its solo optimizer's state_dict, for checkpoints.
"""

from __future__ import annotations

import math
import weakref

import torch

from dlrunner.internals import FUSED_ADAM_ON_ROWS, fused_adam_kernel, took

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
    def __init__(
        self,
        target: str,
        flat: torch.Tensor,
        settings: list[dict],
        weight_decays: list[float],
        weight_mask: torch.Tensor,
        sizes: list[int],
    ):
        """``settings``: each trial's optimizer config; ``weight_decays``: each trial's lambda/m, which
        applies where ``weight_mask`` (P,) is 1 (weight matrices); ``sizes``: the parameters' sizes in
        the order of a row of ``flat``, so that trial k's tensors are the solo optimizer's."""
        self.kind, names = KINDS[target]
        self.flat = flat
        self.weight_decays = [float(d) for d in weight_decays]
        decay = torch.tensor(self.weight_decays, device=flat.device, dtype=flat.dtype)[:, None]
        self.weight_decay = decay * weight_mask if any(self.weight_decays) else None  # (K, P)
        # Each trial's hyperparameters as its solo optimizer holds them (Python floats, double);
        # the (K, 1) columns the step reads are rounded once from them, 1 - beta included.
        self.values = {name: [float(s.get(name, DEFAULTS[self.kind][name])) for s in settings] for name in names}
        self.hyper = {name: self._column(v) for name, v in self.values.items()}
        for name in ("beta", "beta1", "beta2"):
            if name in self.values:
                self.hyper[f"one_minus_{name}"] = self._column([1 - b for b in self.values[name]])
        self.state = {
            name: torch.zeros_like(flat)
            for name in {
                "sgd": (),
                "momentum": ("velocity",),
                "rmsprop": ("square_avg",),
                "adam": ("exp_avg", "exp_avg_sq"),
            }[self.kind]
        }
        self.scratch = torch.empty_like(flat) if self.kind in ("rmsprop", "adam") else None  # reused: see step()
        self.steps = [0] * flat.shape[0]  # per trial: a trial that joins a running stack starts at 0
        self.lr_values, self.minus_lr = None, None
        self.kernel_calls = None  # the kernel's arguments for each trial (_kernel_arguments)
        self.gradients_of, self.views_of_gradients = [], []  # see _trial_gradients
        self.kernel = fused_adam_kernel(flat.device) if self.kind == "adam" else None
        if self.kernel is not None:
            self.sizes = sizes
            is_weight = [bool(part[0]) for part in weight_mask.split(sizes)]  # L2 applies to a whole tensor or not
            self.weight_group = [i for i, w in enumerate(is_weight) if w]
            self.other_group = [i for i, w in enumerate(is_weight) if not w]
            # Each trial's step count, as its solo optimizer's state["step"]: row k is trial k's, and
            # one addition counts a step for all of them.
            self.step_counts = torch.zeros(flat.shape[0], dtype=torch.float32)

    def _column(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64, device=self.flat.device)[:, None].to(self.flat.dtype)

    @torch.no_grad()
    def step(self, lrs: list[float], gradients: list[torch.Tensor]) -> None:
        """One update of every trial with learning rates ``lrs`` (one per trial, full precision) and
        ``gradients``, each parameter's (K, ...) gradient in the order of a row of ``flat``.
        In-place operations on the (K, P) tensors: each one is a pass over every trial's weights."""
        if lrs is not self.lr_values:  # a constant schedule passes the same list every step
            self.lr_values, self.minus_lr = lrs, self._column([-lr for lr in lrs])
            for k, calls in enumerate(self.kernel_calls or ()):
                for _, _, settings in calls:
                    settings["lr"] = lrs[k]
        self.steps = [t + 1 for t in self.steps]
        if self.kernel is not None and self._kernel_step(gradients):
            return
        W, h = self.flat, self.hyper
        g = torch.cat([part.reshape(len(part), -1) for part in gradients], 1)  # (K, P), as W
        if self.weight_decay is not None:
            g = g.addcmul_(self.weight_decay, W)  # dW + (lambda/m) W, in the gradient's own memory
        # Every intermediate lives in the gradient's memory or a reused scratch tensor: a fresh
        # (K, P) tensor per operation costs more than the arithmetic on the CPU, where glibc maps and
        # unmaps each one (measured for K=16 MLP trials: 1.4 ms per Adam step with temporaries, 0.35 without).
        if self.kind == "sgd":  # W += (-lr) * dW, one multiply-add as torch's add with alpha
            W.addcmul_(g, self.minus_lr)
        elif self.kind == "momentum":  # foreach mul_, then add_ with alpha 1 - beta: CourseMomentum
            W.addcmul_(self.state["velocity"].mul_(h["beta"]).addcmul_(g, h["one_minus_beta"]), self.minus_lr)
        elif self.kind == "rmsprop":  # torch.optim.RMSprop's operations in its order
            s = self.state["square_avg"].mul_(h["beta"])
            s.addcmul_(torch.mul(g, h["one_minus_beta"], out=self.scratch), g)
            W.add_(g.mul_(self.minus_lr).div_(torch.sqrt(s, out=self.scratch).add_(h["eps"])))
        else:
            W.add_(self._written_out_adam(g))

    def carry(self, old: StackedOptimizer, rows: list[int]) -> None:
        """Take the state of ``old``'s trials ``rows`` as this optimizer's first rows (the trials that
        stay when a stack regroups); the rows after them are trials that start here."""
        for name, state in self.state.items():
            state[: len(rows)] = old.state[name][rows]
        self.steps[: len(rows)] = [old.steps[r] for r in rows]
        if old.kernel is None:  # it refused its arguments there: it would here too
            self.kernel = None
        if self.kernel is not None:
            self.step_counts[: len(rows)] = old.step_counts[rows]

    def _written_out_adam(self, g: torch.Tensor) -> torch.Tensor:
        """-(lr/(1-b1^t)) m / (sqrt(v)/sqrt(1-b2^t) + eps) in g's memory, in the vector loop's operations
        of torch's fused kernel: equal to it bit for bit except in the last (size mod vector width)
        entries of each tensor, which the kernel's scalar loop rounds its own way."""
        h = self.hyper
        m = self.state["exp_avg"].lerp_(g, h["one_minus_beta1"])
        v = self.state["exp_avg_sq"].mul_(h["beta2"])
        v.addcmul_(g, torch.mul(g, h["one_minus_beta2"], out=self.scratch))
        # The bias corrections as the kernel computes them: C's pow, in double, per trial.
        b1, b2 = self.values["beta1"], self.values["beta2"]
        minus_step_size = self._column(
            [-lr / (1 - b1[k] ** t) for k, (lr, t) in enumerate(zip(self.lr_values, self.steps))]
        )
        correction2 = self._column([math.sqrt(1 - b2[k] ** t) for k, t in enumerate(self.steps)])
        # sqrt in double: the kernel's vector sqrt is correctly rounded, torch.sqrt on float32 is not always
        denominator = self.scratch.copy_(v.double().sqrt_()).div_(correction2).add_(h["eps"])
        return torch.mul(m, minus_step_size, out=g).div_(denominator)

    def _kernel_step(self, gradients: list[torch.Tensor]) -> bool:
        """Adam through torch's fused kernel, one call per trial and parameter group (weights with
        their weight decay, the rest without), on views of the trial's rows: the very update its
        solo optimizer makes, each tensor chunked by the kernel as in the solo run. False when the
        kernel refused its first call (another signature): the written-out step takes over."""
        # One thread for these calls: each trial's tensors are small, and the parallel region the
        # kernel opens per call whatever the size cost up to 0.3 ms where the update takes 20 us.
        threads = torch.get_num_threads()
        if threads == 1:  # a small stack already runs on one thread
            return self._kernel_calls(gradients)
        torch.set_num_threads(1)
        try:
            return self._kernel_calls(gradients)
        finally:
            torch.set_num_threads(threads)

    def _kernel_calls(self, gradients: list[torch.Tensor]) -> bool:
        if self.kernel_calls is None:
            self.kernel_calls = self._kernel_arguments()
        self.step_counts += 1
        moved = False
        for calls, grads in zip(self.kernel_calls, self._trial_gradients(gradients)):
            for (_, tensors, settings), trial_grads in zip(calls, grads):
                try:
                    self.kernel(tensors[0], trial_grads, *tensors[1:], **settings)
                except (TypeError, RuntimeError) as error:
                    if moved:  # other tensors have moved already: no clean way to the written-out step
                        raise
                    self.step_counts -= 1
                    self.kernel = None
                    took(FUSED_ADAM_ON_ROWS, False, f"the kernel refused its arguments: {error}")
                    return False
                moved = True
        return True

    def _trial_gradients(self, gradients: list[torch.Tensor]) -> list[list[list[torch.Tensor]]]:
        """Per trial, per kernel call, the views of its gradients the call takes. Taken once where
        the model writes its gradients into the same tensors at every step (``StackedModel.gradient_into``):
        taking the views costs ~50 us a step for K = 16 MLP trials."""
        if len(gradients) == len(self.gradients_of) and all(a() is b for a, b in zip(self.gradients_of, gradients)):
            return self.views_of_gradients
        rows = zip(*(part.unbind(0) for part in gradients))  # each trial's parameters' gradients in turn
        self.views_of_gradients = [
            [[grads[i] for i in pick] for pick, _, _ in calls] for calls, grads in zip(self.kernel_calls, rows)
        ]
        # weak references: a step's fresh gradients are not kept alive for the cache's sake
        self.gradients_of = [weakref.ref(g) for g in gradients]
        return self.views_of_gradients

    def _kernel_arguments(self) -> list[list[tuple]]:
        """Per trial, per parameter group (weights with its weight decay, the rest without; one group
        without weight decay): (parameter indices, [weights, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
        steps] as the kernel takes them, views of the trial's rows, made once), and its settings."""
        tensors = (self.flat.detach(), self.state["exp_avg"], self.state["exp_avg_sq"])
        every = list(range(len(self.sizes)))
        arguments = []
        for k in range(self.flat.shape[0]):
            rows = [t[k].split(self.sizes) for t in tensors]
            decay = self.weight_decays[k]
            groups = ((self.weight_group, decay), (self.other_group, 0.0)) if decay else ((every, 0.0),)
            calls = []
            for pick, weight_decay in groups:
                if not pick:
                    continue
                views = [[row[i] for i in pick] for row in rows]
                settings = dict(
                    lr=self.lr_values[k],
                    beta1=self.values["beta1"][k],
                    beta2=self.values["beta2"][k],
                    weight_decay=weight_decay,
                    eps=self.values["eps"][k],
                    amsgrad=False,
                    maximize=False,
                )
                calls.append((pick, [views[0], views[1], views[2], [], [self.step_counts[k]] * len(pick)], settings))
            arguments.append(calls)
        return arguments

    def solo_state(self, k: int, names: list[str], sizes: list[int], shapes: list, groups: list[list[int]]) -> dict:
        """Trial k's optimizer state in the form its solo optimizer's ``state_dict()`` has.

        ``groups``: the parameter indices (in the architecture's order) of each solo param group.
        Only the state: the caller merges it into a fresh solo optimizer's state_dict (param_groups)."""
        if self.kind == "sgd":  # plain SGD keeps no state
            return {}
        per_parameter = {}
        rows = {name: s[k].split(sizes) for name, s in self.state.items()}
        step = float(self.steps[k])
        order = [i for group in groups for i in group]
        for position, i in enumerate(order):
            entry = {name: rows[name][i].view(shapes[i]).clone() for name in self.state}
            if self.kind in ("adam", "rmsprop"):
                entry["step"] = torch.tensor(step)
            per_parameter[position] = entry
        return per_parameter

    @torch.no_grad()
    def load_solo_state(self, k: int, solo: dict, sizes: list[int], groups: list[list[int]]) -> None:
        """Row k from a solo optimizer's ``state_dict()["state"]`` (the form ``solo_state`` writes):
        a trial resumed from its checkpoint into a stack."""
        if self.kind == "sgd":
            return
        rows = {name: s[k].split(sizes) for name, s in self.state.items()}
        order = [i for group in groups for i in group]
        for position, i in enumerate(order):
            entry = solo[position]
            for name in self.state:
                rows[name][i].copy_(entry[name].reshape(-1))
            if "step" in entry:  # Adam's and RMSprop's count, the same for every parameter
                self.steps[k] = int(entry["step"])
        if self.kernel is not None:
            self.step_counts[k] = self.steps[k]
