"""Datasets, splits, the train-dev slice, normalisation and user files (SPEC B1, B9, E16, E17)."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from dlrunner.data import build_data, infer_task, sources
from dlrunner.data.splits import normalizer, split_counts, split_indices
from dlrunner.errors import ConfigError
from helpers import compose


def test_ratios_give_counts_with_the_remainder_in_train():
    assert split_counts(1797, {"train": 0.6, "dev": 0.2, "test": 0.2}) == {"train": 1079, "dev": 359, "test": 359}
    counts = split_counts(1000, {"train": 0.98, "dev": 0.01, "test": 0.01})
    assert counts == {"train": 980, "dev": 10, "test": 10}


def test_counts_are_taken_as_given():
    assert split_counts(6000, {"train": 4000, "dev": 1000, "test": 1000}) == {"train": 4000, "dev": 1000, "test": 1000}
    assert split_counts(6000, {"train": 4000, "dev": 1000, "test": 0}) == {"train": 4000, "dev": 1000, "test": 0}


@pytest.mark.parametrize(
    "shares, message",
    [
        ({"train": 0.6, "dev": 0.2, "test": 0.1}, "add up to 1"),
        ({"train": 5000, "dev": 1000, "test": 1000}, "only 6000 examples"),
        ({"train": 4000.5, "dev": 1000, "test": 0}, "whole number"),
        ({"train": 0.8, "dev": -0.2, "test": 0.4}, ">= 0"),
    ],
)
def test_bad_splits_are_rejected(shares, message):
    with pytest.raises(ConfigError, match=message):
        split_counts(6000, shares)


def test_splits_are_disjoint_seeded_and_cover_the_data():
    a = split_indices(1000, {"train": 0.6, "dev": 0.2, "test": 0.2, "train_dev": 0.1}, seed=3)
    b = split_indices(1000, {"train": 0.6, "dev": 0.2, "test": 0.2, "train_dev": 0.1}, seed=3)
    c = split_indices(1000, {"train": 0.6, "dev": 0.2, "test": 0.2, "train_dev": 0.1}, seed=4)
    everything = np.concatenate([a[p]["source"] for p in ("train", "train_dev", "dev", "test")])
    assert sorted(everything.tolist()) == list(range(1000))
    assert len(a["train_dev"]["source"]) == 60 and len(a["train"]["source"]) == 540
    assert all(np.array_equal(a[p]["source"], b[p]["source"]) for p in a)
    assert not np.array_equal(a["dev"]["source"], c["dev"]["source"])


def test_train_dev_comes_from_the_training_mix_when_there_is_a_target():
    parts = split_indices(
        9000, {"train_dev": 1000}, seed=0, target_n=2000, target_shares={"train": 1000, "dev": 500, "test": 500}
    )
    assert sum(len(i) for i in parts["train_dev"].values()) == 1000
    # 1000 of 10000 training examples are target ones: about 10% of the slice should be too.
    assert 40 <= len(parts["train_dev"]["target"]) <= 170


def test_normalisation_uses_training_statistics_only():
    cfg = compose("data=gaussians", "data.split.train_dev=0.2").data
    data = build_data(cfg)
    X_train = data.splits["train"][0].numpy()
    assert np.allclose(X_train.mean(axis=0), 0, atol=1e-5) and np.allclose(X_train.std(axis=0), 1, atol=1e-4)
    raw_X, _ = sources.gaussians(**{k: v for k, v in cfg.source.items() if k != "_target_"})
    assert not np.allclose(data.splits["dev"][0].numpy().mean(axis=0), 0, atol=1e-6)
    _mean, std = normalizer(raw_X)
    assert std.shape == (2,) and (std > 0).all()


def test_constant_features_do_not_become_nan():
    mean, std = normalizer(np.array([[1.0, 2.0], [1.0, 4.0]], dtype=np.float32))
    assert std[0] == 1.0 and mean[0] == 1.0


@pytest.mark.parametrize("name", ["flower", "moons", "circles", "xor", "gaussians", "spiral"])
def test_toy_sets_are_deterministic_two_class_2d(name):
    X1, y1 = getattr(sources, name)(n_samples=200, noise=0.1, seed=1)
    X2, y2 = getattr(sources, name)(n_samples=200, noise=0.1, seed=1)
    assert X1.shape == (200, 2) and np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert set(np.unique(y1)) == {0, 1}


def test_bundled_sets_have_their_published_sizes():
    X, y = sources.digits()
    assert X.shape == (1797, 64) and len(np.unique(y)) == 10
    X, y = sources.breast_cancer()
    assert X.shape == (569, 30) and set(np.unique(y)) == {0, 1}


def test_mnist1d_is_generated_offline_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DLRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    state = np.random.get_state()[1].copy()
    X, y = sources.mnist1d(num_samples=200, seed=1)
    assert X.shape == (200, 40) and len(np.unique(y)) == 10
    assert np.array_equal(np.random.get_state()[1], state)  # the generator's reseeding does not leak
    assert len(list((tmp_path / "cache").glob("mnist1d-*.npz"))) == 1
    X2, y2 = sources.mnist1d(num_samples=200, seed=1)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)


def test_a_cached_mnist1d_is_read_without_importing_the_generator(tmp_path):
    """Importing mnist1d (scipy, matplotlib) takes about a second: a cached set must not pay it."""
    import subprocess
    import sys

    env = {**__import__("os").environ, "DLRUNNER_CACHE_DIR": str(tmp_path / "cache")}
    code = (
        "import sys; from dlrunner.data import sources; sources.mnist1d(num_samples=100, seed=3); "
        "print('mnist1d' in sys.modules)"
    )
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "True" and again.stdout.strip() == "False"


def test_mnist1d_rejects_arguments_the_generator_does_not_have(tmp_path, monkeypatch):
    monkeypatch.setenv("DLRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ConfigError) as raised:
        sources.mnist1d(num_samples=100, noise=0.5)
    assert raised.value.problems[0].key == "data.source.noise" and "iid_noise_scale" in raised.value.problems[0].valid


def test_csv_with_named_labels(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("a,b,species\n1,2,setosa\n3,4,virginica\n5,6,setosa\n")
    X, y, weights, names = sources.csv(str(path), label_column="species")
    assert X.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == [0, 1, 0]
    assert weights is None and names == ["setosa", "virginica"]  # class i's name, kept with the run


@pytest.mark.parametrize(
    "text, column, message",
    [
        ("a,b,label\n1,2,0\n", "target", "no such column"),
        ("a,b,label\n1,x,0\n", "label", "column 'b'"),
        ("", "label", "empty"),
        ("a,label\n1,0\n2\n", "label", "line 3"),
    ],
)
def test_bad_csv_files(tmp_path, text, column, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        sources.csv(str(path), label_column=column)


def test_npz_needs_X_and_y(tmp_path):
    np.savez(tmp_path / "ok.npz", X=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]))
    np.savez(tmp_path / "bad.npz", features=np.zeros((4, 3)))
    assert sources.npz(str(tmp_path / "ok.npz"))[0].shape == (4, 3)
    with pytest.raises(ConfigError, match="X and y"):
        sources.npz(str(tmp_path / "bad.npz"))
    with pytest.raises(ConfigError, match="no such file"):
        sources.npz(str(tmp_path / "missing.npz"))


def test_task_inference_and_label_checks():
    assert infer_task(np.array([0, 1, 1]), "auto", None)[:2] == ("binary", 2)
    assert infer_task(np.array([0, 2, 1]), "auto", None)[:2] == ("multiclass", 3)
    assert infer_task(np.array([0.5, 1.2]), "auto", None)[:2] == ("regression", None)
    with pytest.raises(ConfigError, match=r"\[0, 3\)"):
        infer_task(np.array([0, 1, 5]), "multiclass", 3)
    with pytest.raises(ConfigError, match="whole numbers"):
        infer_task(np.array([-1, 0, 1]), "multiclass", None)
    with pytest.raises(ConfigError, match="binary needs"):
        infer_task(np.array([0, 1, 2]), "binary", None)


def test_nan_features_are_rejected(tmp_path):
    X = np.zeros((10, 2))
    X[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.arange(10) % 2)
    cfg = compose("data=npz", f"data.source.path={tmp_path / 'nan.npz'}").data
    with pytest.raises(ConfigError, match=r"NaN or infinity .* example 3"):
        build_data(cfg)


def test_separate_target_source_feeds_dev_and_test():
    cfg = compose("data=moons", "data.split.train_dev=0.1").data
    OmegaConf.update(
        cfg,
        "target",
        {"_target_": "dlrunner.data.sources.moons", "n_samples": 400, "noise": 0.4, "seed": 7},
        force_add=True,
    )
    OmegaConf.update(cfg, "target_split", {"train": 100, "dev": 150, "test": 150})
    data = build_data(cfg)
    sizes = {name: len(xy[0]) for name, xy in data.splits.items()}
    assert sizes == {"train": 990, "train_dev": 110, "dev": 150, "test": 150, "train_general": 895, "train_target": 95}
    # the training set by distribution (SPEC E17)
    assert sizes["train_general"] + sizes["train_target"] == sizes["train"]
