"""The MNIST-1D paper's models in a plain PyTorch loop, as the MNIST-1D notebooks train them, on the
same data as dlrun's mnist1d_* experiments: the reference that BENCHMARKS.md compares dlrun with.

    python scripts/mnist1d_plain_loop.py cnn --seeds 0 1 2
    python scripts/mnist1d_plain_loop.py cnn --variant shuffle      # a new batch order each epoch
    python scripts/mnist1d_plain_loop.py cnn --variant normalize    # per-feature mean and sigma
    python scripts/mnist1d_plain_loop.py mlp_residual

Adam with lr 1e-2, batches of 100 taken in a fixed order (the notebooks' loop), 6000 steps, on
mnist1d's default data set (4000 training, 1000 test examples); prints the final test accuracy
per seed and their mean and standard deviation. No dlrun code is used.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn


class ConvNet(nn.Module):
    """Three 1-D convolutions of 25 channels with stride 2, then one linear layer (5,210 parameters)."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(1, 25, 5, 2, 1), nn.Conv1d(25, 25, 3, 2, 1), nn.Conv1d(25, 25, 3, 2, 1)])
        self.head = nn.Linear(125, 10)

    def forward(self, x):
        h = x.view(-1, 1, 40)
        for conv in self.convs:
            h = conv(h).relu()
        return self.head(h.flatten(1))


class MLP(nn.Module):
    """Two hidden layers of 100 ReLU units; ``residual`` adds the first's output to the second's,
    as the notebooks' MLP does."""

    def __init__(self, residual: bool):
        super().__init__()
        self.first, self.second, self.head = nn.Linear(40, 100), nn.Linear(100, 100), nn.Linear(100, 10)
        self.residual = residual

    def forward(self, x):
        h = self.first(x).relu()
        h = self.second(h).relu() + (h if self.residual else 0)
        return self.head(h)


MODELS = {"cnn": ConvNet, "mlp": lambda: MLP(residual=False), "mlp_residual": lambda: MLP(residual=True)}


def train_once(model_name: str, seed: int, steps: int, variant: str, data: dict) -> float:
    x_train, y_train = torch.tensor(data["x"], dtype=torch.float32), torch.tensor(data["y"]).long()
    x_test, y_test = torch.tensor(data["x_test"], dtype=torch.float32), torch.tensor(data["y_test"]).long()
    if variant == "normalize":  # the training set's per-feature mean and sigma, as dlrun's data.normalize=true
        mean, std = x_train.mean(0), x_train.std(0)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(seed)
    model = MODELS[model_name]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.arange(len(x_train))
    for step in range(steps):
        start = (step * 100) % len(x_train)
        if variant == "shuffle" and start == 0:
            order = torch.randperm(len(x_train))
        batch = order[start : start + 100]
        loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        return float((model(x_test).argmax(-1) == y_test).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=list(MODELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--variant", choices=["plain", "shuffle", "normalize"], default="plain")
    args = parser.parse_args()

    from mnist1d.data import get_dataset_args, make_dataset

    torch.set_num_threads(1)
    data = make_dataset(get_dataset_args())  # the paper's data set: 4000 train, 1000 test, seed 42
    accuracies = []
    for seed in args.seeds:
        accuracies.append(train_once(args.model, seed, args.steps, args.variant, data))
        print(f"{args.model} ({args.variant}) seed {seed}: test accuracy {accuracies[-1]:.3f}", flush=True)
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(f"mean {statistics.mean(accuracies):.1%} ± {spread:.1%} over {len(accuracies)} seeds")


if __name__ == "__main__":
    main()
