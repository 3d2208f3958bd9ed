"""The mnist1d_* experiments train on the MNIST-1D paper's own data set (issue 23, item 24): mnist1d's
default 5000 examples, its 4000 training examples (dev carved from their end) and its 1000 test ones."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import compose


def test_a_null_split_seed_keeps_the_sources_order():
    from dlrunner.data.splits import split_indices

    parts = split_indices(10, {"train": 6, "dev": 2, "test": 2}, seed=None)
    assert parts["train"]["source"].tolist() == [0, 1, 2, 3, 4, 5]
    assert parts["dev"]["source"].tolist() == [6, 7]
    assert parts["test"]["source"].tolist() == [8, 9]


@pytest.fixture(scope="module")
def paper() -> dict:
    """mnist1d's default data set, generated as the paper's table used it: 4000 train / 1000 test, seed 42."""
    from mnist1d.data import get_dataset_args, make_dataset

    return make_dataset(get_dataset_args())


@pytest.mark.slow  # generates the paper's data set and builds each experiment's splits (~10 s)
@pytest.mark.parametrize("experiment", ["mnist1d_logreg", "mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru"])
def test_the_experiments_use_the_papers_train_and_test_sets(experiment, paper):
    from dlrunner.data import build_data

    cfg = compose(f"experiment={experiment}", "data.normalize=false")
    data = build_data(cfg.data)
    X_test, y_test = data.splits["test"]
    assert len(X_test) == 1000 and len(data.splits["train"][0]) + len(data.splits["dev"][0]) == 4000
    np.testing.assert_allclose(X_test.reshape(1000, 40).numpy(), paper["x_test"], rtol=1e-6)
    assert y_test.tolist() == paper["y_test"].tolist()
    train_and_dev = np.concatenate([data.splits["train"][0].reshape(-1, 40), data.splits["dev"][0].reshape(-1, 40)])
    np.testing.assert_allclose(train_and_dev, paper["x"], rtol=1e-6)
