"""A data source of the user's own, added as docs/architecture.md's recipe says: a function in the
user's module and a `data/NAME.yaml` in a --config-dir. It trains, and what goes wrong with it is
one message naming the key (exit code 2), not Hydra's raw text or a traceback."""

from __future__ import annotations

import os

import pytest

from helpers import dlrun_in_process, read_summary, run_dirs

SOURCE = '''
import numpy as np


def rings(n_samples=200, noise=0.1, seed=0, extra="none"):
    """Two rings in 2-D: the inner one is class 0."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % 2
    angle = rng.uniform(0, 2 * np.pi, n_samples)
    radius = 1.0 + y + rng.normal(0, noise, n_samples)
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    if extra == "names_third":  # the class names where the weights belong
        return X, y, ["inner", "outer"]
    if extra == "one_value":
        return X
    return X, y, None, ["inner", "outer"]


def blobs(n_samples=100, n_inputs=2, seed=0):
    """Two blobs in n_inputs dimensions: an argument named like one the trainer gives a model."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % 2
    return rng.normal(size=(n_samples, n_inputs)) + 3 * y[:, None], y
'''

# The recipe's file: the data schema first, the source with the settings it changes, task, human error, split.
RINGS_YAML = """# Two rings in 2-D
defaults:
  - /schema/data/data@_here_
  - _self_

source:
  _target_: my_sources.rings
  n_samples: 300
task: binary
human_error: 0.0
split: {train: 0.6, dev: 0.2, test: 0.2}
"""

QUICK = ("trainer.steps=4", "trainer.eval_every=2", "trainer.progress=none")


@pytest.fixture
def user_files(tmp_path):
    (tmp_path / "my_sources.py").write_text(SOURCE)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "rings.yaml").write_text(RINGS_YAML)
    blobs = RINGS_YAML.replace("my_sources.rings", "my_sources.blobs").replace("n_samples: 300", "n_inputs: 3")
    (tmp_path / "conf" / "data" / "blobs.yaml").write_text(blobs)
    without_dev = RINGS_YAML.replace("split: {train: 0.6, dev: 0.2, test: 0.2}", "split: {train: 0.8, test: 0.2}")
    (tmp_path / "conf" / "data" / "rings_no_dev.yaml").write_text(without_dev)
    return tmp_path


def dlrun_rings(folder, *args):
    env = {
        "PYTHONPATH": f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "DLRUN_ALLOWED_TARGETS": "my_sources",
    }
    return dlrun_in_process("train", "--config-dir", str(folder / "conf"), *QUICK, *args, cwd=folder, env=env)


def test_a_data_source_added_by_the_recipe_trains_and_keeps_its_class_names(user_files):
    result = dlrun_rings(user_files, "data=rings", "data.source.n_samples=100", "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    summary = read_summary(user_files / "run")
    assert summary["status"] == "completed"
    assert summary["class_names"] == ["inner", "outer"]


@pytest.mark.parametrize(
    "args, expected",
    [
        # an argument of the function that the file leaves to its default: added with +
        (("data=rings", "data.source.noise=0.3"), ["data.source.noise=0.3", "does not list", "+data.source.noise=0.3"]),
        # a misspelt one: the function's settings listed
        (
            ("data=rings", "data.source.noize=0.3"),
            ["data.source.noize=0.3", "not a setting of my_sources.rings", "did you mean 'noise'", "n_samples, noise"],
        ),
        # a split without its dev part
        (("data=rings_no_dev",), ["data.split.dev", "???", "required"]),
        # the class names returned where the weights belong
        (
            ("data=rings", "+data.source.extra=names_third"),
            ["data.source", "the third value returned, the example weights"],
        ),
        (
            ("data=rings", "+data.source.extra=one_value"),
            ["data.source", "returns (X, y), (X, y, w)", "returned ndarray"],
        ),
    ],
    ids=["argument-not-in-file", "misspelt-argument", "split-without-dev", "names-for-weights", "one-value"],
)
def test_a_user_data_source_gone_wrong_is_one_message(user_files, args, expected):
    result = dlrun_rings(user_files, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "Error executing job" not in output
    assert [line[:5] for line in output.splitlines()].count("dlrun") == 1, output
    for text in expected:
        assert text in output, (text, output)
    assert run_dirs(user_files) == []


def test_a_source_may_take_an_argument_named_like_a_models_runtime_one(user_files):
    result = dlrun_rings(user_files, "data=blobs", "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    assert read_summary(user_files / "run")["status"] == "completed"


def test_a_command_that_loads_no_data_needs_no_data_setting(tmp_path):
    # data=csv leaves data.source.path at ???: training needs it, a summary at a given shape does not
    result = dlrun_in_process("summary", "data=csv", "model=mlp", "--input-shape", "4", "--outputs", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "build_mlp on 4 inputs, 3 outputs" in result.stdout
    result = dlrun_in_process("train", "data=csv", *QUICK, cwd=tmp_path)
    assert result.returncode == 2 and "data.source.path" in result.stderr and "required" in result.stderr
