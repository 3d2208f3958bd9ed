"""Momentum in the course's exponentially-weighted-average form (SPEC C3, C5)."""

from __future__ import annotations

import torch

from dlrunner.internals import foreach_ops


class CourseMomentum(torch.optim.Optimizer):
    """v = beta*v + (1-beta)*(dW + weight_decay*W);  W -= lr*v;  v starts at 0.

    weight_decay is the L2 term's gradient factor lambda/m (SPEC B4), given per parameter group.
    """

    def __init__(self, params, lr: float, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, beta=beta, weight_decay=weight_decay))
        self.foreach_add, self.foreach_mul_, self.foreach_add_ = foreach_ops()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = self.foreach_add(grads, params, alpha=group["weight_decay"])
            velocities = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                velocities.append(state["velocity"])
            self.foreach_mul_(velocities, group["beta"])
            self.foreach_add_(velocities, grads, alpha=1 - group["beta"])
            self.foreach_add_(params, velocities, alpha=-group["lr"])
        return loss
