"""Bad input through the real `dlrun` CLI: one clear message, exit code 2, nothing started, nothing lost.

Each case is what a user might type (or a file they might point at). Every one must end with exit
code 2 and one message that names the key, the value and what is valid, with no traceback, before
any training: no run folder, no summary.json, no metrics.jsonl. RELIABILITY.md lists the cases.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import dlrun_in_process, run_dirs, run_dlrun

FAST = ("trainer.steps=1", "trainer.eval_every=1")  # were a bad case to start training, it would be short


def case(name: str, *args: str, key: str, value: str, valid: str, command: str = "train"):
    """``args`` given to ``dlrun COMMAND``; the output must contain ``key``, ``value`` and ``valid``."""
    return pytest.param(command, args, key, value, valid, id=name)


CASES = [
    # A multirun checks every job before the first trains (the bad value is in its second job)
    case("multirun-second-job", "-m", "optimizer.lr=0.1,-1", key="optimizer.lr=-1", value="(job: ", valid="> 0"),
    case("learning-curve", "optimizer.lr=-1", key="optimizer.lr=-1", value="-1", valid="> 0", command="learning-curve"),
    # A sweep whose range reaches past what a setting accepts is refused before its first trial
    case(
        "sweep-range-past-valid",
        "model.keep_prob=interval(0.5, 1.5)",
        "hydra.sweeper.budget=2",
        key="model.keep_prob=1.5",
        value="1.5",
        valid="an end of its search range: narrow the range",
        command="sweep",
    ),
    case(
        "several-values-without-m",
        "optimizer.lr=1e-3,1e-2",
        key="optimizer.lr=1e-3,1e-2",
        value="several values",
        valid="add -m (dlrun train -m optimizer.lr=1e-3,1e-2)",
    ),
    case(
        "sweep-distribution-missing-argument",
        "optimizer.lr=interval(1e-4)",
        key="optimizer.lr=interval(1e-4)",
        value="missing a required argument: 'end'",
        valid="e.g. interval(1e-4, 1)",
        command="sweep",
    ),
    case("section-removed", "~model", key="model", value="???", valid="required: choose one with model=NAME"),
    case(
        "sweep-setting-without-prefix",
        "sweep=lr",
        "pruner=halving",
        key="pruner=halving",
        value="halving",
        valid="pruner is a setting of the sweep; write hydra.sweeper.pruner=halving",
        command="sweep",
    ),
    case(
        "sweep-choice-not-valid",
        "optimizer.lr=0.1,-1",
        "hydra.sweeper.budget=2",
        key="optimizer.lr=-1",
        value="-1",
        valid="one of its choices: leave it out",
        command="sweep",
    ),
    # Unknown config group options and keys, with "did you mean"
    case("unknown-option", "model=mlpp", key="model=mlpp", value="mlpp", valid="did you mean 'mlp'?"),
    case(
        "unknown-option-list",
        "model=transformer",
        key="model=transformer",
        value="transformer",
        valid="Options of model: alexnet, cnn",
    ),
    case("unknown-schedule", "schedule=cosin", key="schedule", value="cosin", valid="did you mean 'cosine'?"),
    case("unknown-group", "modle=mlp", key="modle", value="modle", valid="did you mean 'model'?"),
    case(
        "sweep-setting-in-train",
        "hydra.sweeper.pruner=halving",
        key="hydra.sweeper.pruner",
        value="no such setting",
        valid="Those apply to dlrun sweep, not dlrun train",
    ),
    case("misspelt-key", "optimizer.lrr=0.1", key="optimizer.lrr", value="lrr", valid="did you mean 'lr'?"),
    case("misspelt-trainer-key", "trainer.stepz=10", key="trainer.stepz", value="stepz", valid="did you mean 'steps'?"),
    case(
        "added-unknown-key",
        "+model.layer=[3]",
        key="model.layer",
        value="[3]",
        valid="valid keys: _target_, activation",
    ),
    case(
        "key-builder-does-not-take",
        "data=moons",
        "+data.source.factor=2",
        key="data.source.factor",
        value="2",
        valid="valid keys: n_samples, noise, seed",
    ),
    case(
        "removed-schema-key",
        "~data.human_error",
        key="data.human_error",
        value="~data.human_error",
        valid="cannot be removed",
    ),
    case("show-unknown-option", "-p", "data.split", key="show -p", value="-p", valid="no such option", command="show"),
    case(
        "unknown-flag",
        "--debug_not_a_flag",
        key="--debug_not_a_flag",
        value="--debug_not_a_flag",
        valid="no such option; the options are Hydra's (-m, --multirun",
    ),
    # Wrong types
    case("lr-not-a-number", "optimizer.lr=fast", key="optimizer.lr", value="fast", valid="must be a number"),
    case("steps-not-whole", "trainer.steps=1.5", key="trainer.steps", value="1.5", valid="must be a whole number"),
    case(
        "bool-not-bool", "model.batch_norm=maybe", key="model.batch_norm", value="maybe", valid="must be true or false"
    ),
    case("layers-not-a-list", "model.layers=64", key="model.layers", value="64", valid="must be a list"),
    case("layers-not-integers", "model.layers=[a,b]", key="model.layers", value="a", valid="must be a whole number"),
    case("layers-fractional", "model.layers=[1.5]", key="model.layers", value="1.5", valid="must be a whole number"),
    case("group-given-a-number", "data.split=3", key="data.split", value="3", valid="a group of settings"),
    case("batch-size-word", "trainer.batch_size=big", key="trainer.batch_size", value="big", valid="or 'full'"),
    # Values out of range
    case("lr-zero", "optimizer.lr=0", key="optimizer.lr", value="0", valid="a number > 0"),
    case("lr-negative", "optimizer.lr=-0.1", key="optimizer.lr", value="-0.1", valid="a number > 0"),
    case("keep-prob-zero", "model.keep_prob=0", key="model.keep_prob", value="0", valid="(0, 1]"),
    case("keep-prob-above-1", "model.keep_prob=1.5", key="model.keep_prob", value="1.5", valid="(0, 1]"),
    case("keep-prob-list", "model.keep_prob=[0.5,2]", key="model.keep_prob", value="[0.5,2]", valid="(0, 1]"),
    case("beta-one", "optimizer=momentum", "optimizer.beta=1", key="optimizer.beta", value="1", valid="in [0, 1)"),
    case(
        "beta-negative",
        "optimizer=momentum",
        "optimizer.beta=-0.1",
        key="optimizer.beta",
        value="-0.1",
        valid="in [0, 1)",
    ),
    case("adam-beta1-one", "optimizer.beta1=1.0", key="optimizer.beta1", value="1", valid="in [0, 1)"),
    case("adam-beta2", "optimizer.beta2=1.5", key="optimizer.beta2", value="1.5", valid="in [0, 1)"),
    case(
        "lambda-negative",
        "regularization=l2",
        "regularization.l2=-0.1",
        key="regularization.l2",
        value="-0.1",
        valid="a number >= 0",
    ),
    case(
        "batch-size-zero", "optimizer.batch_size=0", key="optimizer.batch_size", value="0", valid="a whole number > 0"
    ),
    case("layers-empty", "model.layers=[]", key="model.layers", value="[]", valid="at least one hidden layer"),
    case(
        "layers-zero-units", "model.layers=[64,0]", key="model.layers", value="[64,0]", valid="positive whole numbers"
    ),
    case("split-seed-negative", "data.split.seed=-1", key="data.split.seed", value="-1", valid="a whole number >= 0"),
    case("significant-gap", "diagnosis.significant_gap=2", key="diagnosis.significant_gap", value="2", valid="[0, 1]"),
    case(
        "source-argument",
        "data=moons",
        "data.source.noise=-1",
        key="data.source",
        value="noise: -1",
        valid="rejected these arguments",
    ),
    case(
        "source-argument-misspelt",
        "data=moons",
        "data.source.noize=0.3",
        key="data.source.noize",
        value="0.3",
        valid="did you mean 'noise'?\nValid keys: n_samples, noise, seed",
    ),
    case(
        "list-split-by-the-shell",  # model.layers=[64, 32] unquoted: the shell gives two words
        "model.layers=[64,",
        "32]",
        key="model.layers=[64,",
        value="the value ends at a space",
        valid="(model.layers=[64,32])",
    ),
    case(
        "plus-on-a-group",
        "+experiment=mnist1d_logreg",
        key="+experiment=mnist1d_logreg",
        value="has an option already",
        valid="experiment=mnist1d_logreg (without +)",
    ),
    case("flag-for-a-setting", "--steps", "300", key="--steps", value="no such option", valid="trainer.steps?"),
    case("unknown-flag", "--bogus", key="--bogus", value="no such option", valid="KEY=VALUE", command="summary"),
    case(
        "source-takes-kwargs-misspelt",  # mnist1d(num_samples, seed, **generator_args)
        "data.source.num_sample=100",
        key="data.source.num_sample",
        value="100",
        valid="did you mean 'num_samples'?",
    ),
    case("steps-zero", "trainer.steps=0", key="trainer.steps", value="0", valid="a whole number > 0"),
    case("decay-factor", "schedule=staircase", "schedule.factor=2", key="schedule.factor", value="2", valid="(0, 1]"),
    case("activation", "model.activation=swish", key="model.activation", value="swish", valid="one of ['sigmoid'"),
    case("init", "model.init=orthogonal", key="model.init", value="orthogonal", valid="one of ['he'"),
    case("device", "trainer.device=tpu", key="trainer.device", value="tpu", valid="auto, cpu, cuda"),
    case("human-error-above-1", "data.human_error=1.5", key="data.human_error", value="1.5", valid="[0, 1]"),
    case("human-error-negative", "data.human_error=-0.1", key="data.human_error", value="-0.1", valid="[0, 1]"),
    case(
        "split-ratios", "data=digits", "data.split.train=0.7", key="data.split", value="train: 0.7", valid="add up to 1"
    ),
    case(
        "split-ratio-among-counts",
        "data.split.train=0.5",  # mnist1d's split is in counts
        key="data.split.train",
        value="0.5",
        valid="(dev 1000, test 1000 are counts): give every part as a ratio, or every part as a count",
    ),
    case(
        "split-counts-too-many",
        "data=digits",
        "data.split.train=1500",
        "data.split.dev=300",
        "data.split.test=100",
        key="data.split",
        value="train: 1500",
        valid="only 1797 examples",
    ),
    case(
        "dev-smaller-than-classes",
        "data=digits",
        "data.split.train=0.799",
        "data.split.dev=0.001",
        key="data.split.dev",
        value="0.001",
        valid="at least one example per class",
    ),
    # The user's data files
    case("csv-path-not-set", "data=csv", key="data.source.path", value="???", valid="required"),
    case(
        "csv-missing",
        "data=csv",
        "data.source.path=missing.csv",
        key="data.source.path",
        value="missing.csv",
        valid="no such file",
    ),
    case(
        "csv-is-a-folder",
        "data=csv",
        "data.source.path=folder",
        key="data.source.path",
        value="folder",
        valid="give the path of a file",
    ),
    case(
        "csv-binary",
        "data=csv",
        "data.source.path=binary.csv",
        key="data.source.path",
        value="binary.csv",
        valid="not a readable CSV",
    ),
    case(
        "csv-empty",
        "data=csv",
        "data.source.path=empty.csv",
        key="data.source.path",
        value="empty.csv",
        valid="needs a header row",
    ),
    case(
        "csv-no-label-column",
        "data=csv",
        "data.source.path=data.csv",
        "data.source.label_column=target",
        key="data.source.label_column",
        value="target",
        valid="columns are ['a', 'b', 'label']",
    ),
    case(
        "csv-text-feature",
        "data=csv",
        "data.source.path=text.csv",
        key="data.source.path",
        value="text.csv",
        valid="'abc' is not a number (features must be numeric)",
    ),
    case(
        "csv-nan",
        "data=csv",
        "data.source.path=nan.csv",
        key="data.source.path",
        value="nan.csv",
        valid="NaN or infinity",
    ),
    case(
        "csv-inf",
        "data=csv",
        "data.source.path=inf.csv",
        key="data.source.path",
        value="inf.csv",
        valid="NaN or infinity",
    ),
    case(
        "npz-missing",
        "data=npz",
        "data.source.path=missing.npz",
        key="data.source.path",
        value="missing.npz",
        valid="no such file",
    ),
    case(
        "npz-not-npz",
        "data=npz",
        "data.source.path=data.csv",
        key="data.source.path",
        value="data.csv",
        valid="numpy.savez",
    ),
    case(
        "npz-no-y",
        "data=npz",
        "data.source.path=no_y.npz",
        key="data.source.path",
        value="no_y.npz",
        valid="needs arrays X and y",
    ),
    case(
        "npz-nan",
        "data=npz",
        "data.source.path=nan.npz",
        key="data.source.path",
        value="nan.npz",
        valid="NaN or infinity",
    ),
    case(
        "labels-above-n-classes",
        "data=npz",
        "data.source.path=labels.npz",
        "data.n_classes=2",
        key="data.n_classes",
        value="2",
        valid="labels must lie in [0, 2)",
    ),
    case(
        "labels-negative",
        "data=npz",
        "data.source.path=negative.npz",
        key="data.task",
        value="multiclass",
        valid="whole numbers 0, 1, ..., C-1",
    ),
    # Inputs of a shape the model cannot take
    case(
        "cnn-on-vectors",
        "model=cnn",
        "data=moons",
        key="data.shape",
        value="[2]",
        valid="a CNN needs examples of shape",
    ),
    case(
        "lenet-on-vectors",
        "model=lenet5",
        "data=digits",
        key="data.shape",
        value="[64]",
        valid="needs images (C, H, W)",
    ),
    case(
        "rnn-on-images",
        "model=rnn",
        "data=digits_images",
        key="data.shape",
        value="[1,8,8]",
        valid="a sequence model needs",
    ),
    case(
        "shape-wrong-size",
        "model=cnn",
        "data=digits_images",
        "data.shape=[3,8,8]",
        key="data.shape",
        value="[3,8,8]",
        valid="must hold exactly 64 values",
    ),
    # Sweeps: ranges that cannot be sampled
    case(
        "sweep-inverted",
        "optimizer.lr=tag(log, interval(1, 1e-4))",
        key="optimizer.lr",
        value="interval(1, 1e-4)",
        valid="the lower bound must be below the upper bound",
        command="sweep",
    ),
    case(
        "sweep-empty",
        "model.keep_prob=interval(0.5, 0.5)",
        key="model.keep_prob",
        value="interval(0.5, 0.5)",
        valid="the lower bound must be below the upper bound",
        command="sweep",
    ),
    case(
        "sweep-log-zero",
        "optimizer.lr=tag(log, interval(0, 1))",
        key="optimizer.lr",
        value="interval(0, 1)",
        valid="a log scale needs bounds > 0",
        command="sweep",
    ),
    case(
        "sweep-log-negative",
        "optimizer.lr=tag(log, interval(-1, 1))",
        key="optimizer.lr",
        value="interval(-1, 1)",
        valid="a log scale needs bounds > 0",
        command="sweep",
    ),
    case(
        "sweep-pow2",
        "trainer.batch_size=tag(pow2, int(interval(0, 64)))",
        key="trainer.batch_size",
        value="interval(0, 64)",
        valid="powers of two",
        command="sweep",
    ),
    case(
        "sweep-budget",
        "sweep=lr",
        "hydra.sweeper.budget=0",
        key="hydra.sweeper.budget",
        value="0",
        valid="a whole number >= 1",
        command="sweep",
    ),
    # Resuming and transfer from checkpoints that are missing, corrupt or not what they must be
    case(
        "resume-missing",
        "trainer.resume=missing.pt",
        key="trainer.resume",
        value="missing.pt",
        valid="no checkpoint there",
    ),
    case(
        "resume-folder-without",
        "trainer.resume=folder",
        key="trainer.resume",
        value="folder",
        valid="no checkpoint there",
    ),
    case(
        "resume-garbage",
        "data=moons",
        "trainer.resume=garbage.pt",
        key="trainer.resume",
        value="garbage.pt",
        valid="not a readable checkpoint",
    ),
    case(
        "resume-truncated",
        "data=moons",
        "trainer.resume=truncated.pt",
        key="trainer.resume",
        value="truncated.pt",
        valid="not a readable checkpoint",
    ),
    case(
        "resume-best-only",
        "data=moons",
        "trainer.resume=best.pt",
        key="trainer.resume",
        value="best.pt",
        valid="only the best weights",
    ),
    case(
        "transfer-missing",
        "transfer.checkpoint=missing.pt",
        key="transfer.checkpoint",
        value="missing.pt",
        valid="no checkpoint there",
    ),
    case(
        "transfer-garbage",
        "data=moons",
        "transfer.checkpoint=garbage.pt",
        key="transfer.checkpoint",
        value="garbage.pt",
        valid="not a readable checkpoint",
    ),
    # A config naming code outside the allow-list (more in test_untrusted.py)
    case(
        "target-not-allowed",
        "model._target_=os.system",
        key="model._target_",
        value="os.system",
        valid="DLRUN_ALLOWED_TARGETS",
    ),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A real run's checkpoints (data=moons, a few steps), to corrupt and misuse."""
    folder = tmp_path_factory.mktemp("checkpoints")
    result = dlrun_in_process(
        "train",
        "data=moons",
        "trainer.steps=4",
        "trainer.eval_every=2",
        "trainer.progress=none",
        "hydra.run.dir=run",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    return folder / "run" / "checkpoints"


def write_bad_files(folder, checkpoints) -> None:
    """The files the cases point at, each wrong in its own way."""
    (folder / "data.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    (folder / "text.csv").write_text("x1,x2,label\n1,abc,0\n3,4,1\n5,6,0\n")
    (folder / "nan.csv").write_text("x1,x2,label\n1,2,0\n3,nan,1\n5,6,0\n7,8,1\n")
    (folder / "inf.csv").write_text("x1,x2,label\n1,inf,0\n3,4,1\n5,6,0\n7,8,1\n")
    (folder / "empty.csv").write_text("")
    (folder / "binary.csv").write_bytes(bytes(range(128, 256)) * 4)
    (folder / "folder").mkdir()
    np.savez(folder / "labels.npz", X=np.zeros((20, 2)), y=np.arange(20) % 4)
    np.savez(folder / "negative.npz", X=np.random.default_rng(0).normal(size=(40, 2)), y=-(np.arange(40) % 2))
    np.savez(folder / "nan.npz", X=np.full((40, 2), np.nan), y=np.arange(40) % 2)
    np.savez(folder / "no_y.npz", X=np.zeros((40, 2)))
    (folder / "garbage.pt").write_bytes(os.urandom(600))
    (folder / "truncated.pt").write_bytes((checkpoints / "last.pt").read_bytes()[:500])
    (folder / "best.pt").write_bytes((checkpoints / "best.pt").read_bytes())


def result_files(folder) -> list:
    return [p for name in ("summary.json", "metrics.jsonl") for p in folder.glob(f"**/{name}")]


# Every case runs through the CLI in this process (the fast tier), and through the installed `dlrun`
# command in a subprocess (the slow tier: the process's own exit code and output).
RUNNERS = [
    pytest.param(dlrun_in_process, id="in-process"),
    pytest.param(run_dlrun, id="subprocess", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("run", RUNNERS)
@pytest.mark.parametrize("command, args, key, value, valid", CASES)
def test_bad_input_is_one_clear_message_exit_2_and_nothing_started(
    tmp_path, checkpoints, command, args, key, value, valid, run
):
    write_bad_files(tmp_path, checkpoints)
    before = sorted(tmp_path.iterdir())
    result = run(command, *FAST, *args, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert result.stdout == "" and [line[:5] for line in output.splitlines()].count("dlrun") == 1, output  # one message
    for text in (key, value, valid):
        assert text in output, (text, output)
    assert "Traceback" not in output
    assert run_dirs(tmp_path) == [] and result_files(tmp_path) == []
    assert sorted(tmp_path.iterdir()) == before  # no outputs/ or multirun/ left behind


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40


def test_debug_shows_the_traceback(tmp_path):
    for args in (["--debug", "train"], ["train", "--debug"]):
        result = run_dlrun(*args, *FAST, "optimizer.lr=-1", cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" in result.stderr  # bad input: exit code 2 all the same
        assert "optimizer.lr=-1: a number > 0" in result.stderr
