"""Recurrent sequence models: vanilla RNN, GRU and LSTM with a choice of output head (SPEC G).

The recurrent part is torch's ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (``batch_first=True``):

- rnn (G, L10329): a<t> = tanh(W_aa a<t-1> + W_ax x<t> + b_a), trained by backpropagation through
  time (L10427). Over long sequences its gradients vanish (long-range dependencies are lost) or
  explode; gradient clipping (``regularization.grad_clip_norm``, L10669) guards against the latter.
- gru (L10695): an update gate Gamma_u decides how much of the memory cell to overwrite at each
  step, so information (and gradient) can pass many steps unchanged.
- lstm (L10778): separate update, forget and output gates; c<t> = Gamma_u * c~<t> + Gamma_f * c<t-1>
  and a<t> = Gamma_o * tanh(c<t>).

``bidirectional`` runs a second network from the end of the sequence back to the start and
concatenates both directions' activations at every step; ``num_layers`` stacks recurrent layers (deep
RNNs, L10900: 3 recurrent layers is already a lot, so 1-3 are allowed).

Heads turn the per-step activations a<1..T> (N, T, D*hidden; D = 2 if bidirectional) into outputs
(RNN types, L10477):

- last: many-to-one from the final state: a<T> (bidirectional: the forward direction's a<T> and the
  backward direction's a<1>, i.e. both directions' final states), then a linear layer.
- mean: many-to-one from the mean of a<t> over time, then a linear layer.
- attention: many-to-one attention pooling (L11973): a small network scores each step,
  e<t> = v . tanh(W a<t> + b); alpha<t> = softmax over t of e<t>; context = sum_t alpha<t> a<t>;
  then a linear layer.
- flatten: concatenate all T activations, then a linear layer (the MNIST-1D paper's GRU:
  GRU(1, 6, bidirectional) then Linear(2*6*40, 10)). Ties the model to one sequence length T.
- many_to_many: the same linear layer at every step; output (N, T, n_outputs).

Models return raw scores (the loss applies sigmoid/softmax), like every builder in dlrunner.models.
"""

from __future__ import annotations

import torch
from torch import nn

from dlrunner.errors import ConfigError, Problem

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
HEADS = ("last", "mean", "attention", "flatten", "many_to_many")
MAX_LAYERS = 3
LONG_SEQUENCE = 50  # above this many steps a vanilla RNN gets a note about vanishing gradients


class SequenceModel(nn.Module):
    """A recurrent network (``self.rnn``) followed by a head; input (N, T, features)."""

    def __init__(
        self,
        cell: str,
        hidden: int,
        layers: int,
        bidirectional: bool,
        head: str,
        dropout: float,
        steps: int,
        features: int,
        n_outputs: int,
    ):
        super().__init__()
        self.cell, self.head, self.steps, self.features = cell, head, steps, features
        self.hidden, self.directions = hidden, 2 if bidirectional else 1
        self.rnn = CELLS[cell](
            features,
            hidden,
            num_layers=layers,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
            batch_first=True,
        )
        width = self.directions * hidden
        if head == "attention":
            # the small scoring network of the course's attention model: one tanh layer, one score
            self.score = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1))
        self.out = nn.Linear(width * steps if head == "flatten" else width, n_outputs)
        self.notes: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, T, F); also accepts the same numbers flattened to (N, T*F)
        x = x.reshape(x.shape[0], self.steps, self.features)
        a, _ = self.rnn(x)  # (N, T, D*hidden): the top layer's activations at every step
        if self.head == "many_to_many":
            return self.out(a)  # Linear acts on the last dimension: the same layer at every step
        if self.head == "last":
            if self.directions == 2:
                # forward direction's final state is at step T, the backward direction's at step 1
                pooled = torch.cat([a[:, -1, : self.hidden], a[:, 0, self.hidden :]], dim=1)
            else:
                pooled = a[:, -1]
        elif self.head == "mean":
            pooled = a.mean(dim=1)
        elif self.head == "attention":
            alpha = torch.softmax(self.score(a), dim=1)  # (N, T, 1): weights over time sum to 1
            pooled = (alpha * a).sum(dim=1)
        else:  # flatten
            pooled = a.reshape(a.shape[0], -1)
        return self.out(pooled)


def build_rnn(
    cell: str = "gru",
    hidden: int = 64,
    num_layers: int = 1,
    bidirectional: bool = False,
    head: str = "last",
    dropout: float = 0.0,
    *,
    input_shape: tuple,
    n_outputs: int,
) -> nn.Module:
    """A recurrent sequence model (SPEC G): ``cell`` layers of ``hidden`` units, then ``head``.

    Args:
        cell: rnn (vanilla tanh RNN) | gru | lstm.
        hidden: units in the activation a<t> of each recurrent layer (per direction).
        num_layers: stacked recurrent layers, 1-3 (deep RNNs: 3 is already a lot).
        bidirectional: also read the sequence backwards and concatenate both directions.
        head: last | mean | attention | flatten | many_to_many (see the module docstring).
        dropout: drop probability between stacked recurrent layers (needs num_layers >= 2).
        input_shape: one example's shape (T, features), e.g. (40, 1) for MNIST-1D as a sequence.
        n_outputs: 1 for binary and regression, C for C classes.

    Returns:
        A module mapping (N, T, features) to (N, n_outputs), or (N, T, n_outputs) for
        many_to_many; ``model.notes`` lists remarks for the user.

    Example:
        >>> build_rnn("gru", 6, bidirectional=True, head="flatten", input_shape=(40, 1), n_outputs=10)
        ... # the MNIST-1D paper's GRU: 5,134 parameters
    """
    steps, features = _sequence_shape(input_shape)
    problems = []
    if cell not in CELLS:
        problems.append(Problem("model.cell", cell, f"one of {list(CELLS)}"))
    if head not in HEADS:
        problems.append(Problem("model.head", head, f"one of {list(HEADS)}"))
    if not _whole(hidden) or hidden < 1:
        problems.append(Problem("model.hidden", hidden, "a whole number >= 1 (units per recurrent layer)"))
    if not _whole(num_layers) or not 1 <= num_layers <= MAX_LAYERS:
        problems.append(
            Problem(
                "model.num_layers",
                num_layers,
                f"a whole number from 1 to {MAX_LAYERS} (deep RNNs: 3 stacked recurrent layers is already a lot)",
            )
        )
    if not isinstance(bidirectional, bool):
        problems.append(Problem("model.bidirectional", bidirectional, "true or false"))
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        problems.append(Problem("model.dropout", dropout, "a drop probability in [0, 1)"))
    if problems:
        raise ConfigError(problems)

    model = SequenceModel(
        cell, int(hidden), int(num_layers), bidirectional, head, float(dropout), steps, features, n_outputs
    )
    if cell == "rnn" and steps > LONG_SEQUENCE:
        model.notes.append(
            f"a vanilla RNN struggles with long-range dependencies over {steps} steps (vanishing gradients); "
            "GRU or LSTM (model.cell=gru|lstm) keep information across many steps; gradient clipping "
            "(regularization.grad_clip_norm) guards against exploding gradients"
        )
    if steps == 1 and features > 1:  # e.g. data=mnist1d_signal, shaped (1, 40) for a 1-D CNN
        model.notes.append(
            f"each example is 1 time step of {features} features, so the recurrence never runs; "
            f"to read the {features} numbers as a sequence use data.shape=[{features},1] (or data=mnist1d_sequence)"
        )
    if dropout > 0 and num_layers == 1:
        model.notes.append(
            "model.dropout acts between stacked recurrent layers, so with model.num_layers=1 it has no effect"
        )
    return model


def _whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and float(value).is_integer()


def _sequence_shape(input_shape) -> tuple[int, int]:
    """(T, features) from one example's shape, or a ConfigError telling the user to reshape."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 2 or min(shape) < 1:
        hint = (
            f"set data.shape=[{shape[0]},1] to read these {shape[0]} numbers as {shape[0]} steps of 1 feature "
            "(as for MNIST-1D as a sequence)"
            if len(shape) == 1
            else "e.g. data.shape=[40,1] for MNIST-1D as a sequence"
        )
        raise ConfigError(
            Problem(
                "data.shape",
                list(shape),
                "a sequence model needs examples of shape (T, features), "
                f"T time steps with `features` numbers each; {hint}",
            )
        )
    return shape
