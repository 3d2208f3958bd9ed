"""Untrusted configs and files: a config or a checkpoint handed to you cannot make `dlrun` run code,
and no secret from the environment ends up in what a run writes. Through the real `dlrun`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import dlrun_in_process, read_summary, run_dirs, run_dlrun

FAST = ("data=moons", "trainer.steps=4", "trainer.eval_every=2", "trainer.progress=none")


def _user_config(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _pythonpath(*folders: Path) -> str:
    return os.pathsep.join([*map(str, folders), os.environ.get("PYTHONPATH", "")])


# Each would create the marker file if dlrun called (or imported) what it names.
MALICIOUS = {
    "model": "_target_: os.system\ncommand: touch {marker}\n",
    "optimizer": "_target_: builtins.exec\nsource: \"open('{marker}', 'w').close()\"\nbatch_size: 32\n",
    "schedule": "_target_: subprocess.Popen\nargs: [touch, '{marker}']\n",
    "data": "source:\n  _target_: subprocess.run\n  args: [touch, '{marker}']\ntask: auto\nhuman_error: null\n"
    "split: {{train: 0.6, dev: 0.2, test: 0.2, train_dev: 0, seed: 0}}\n",
}


@pytest.mark.parametrize("group", sorted(MALICIOUS))
@pytest.mark.parametrize("how", ["--config-dir", "DLRUN_CONFIG_DIR"])
def test_a_config_cannot_name_code_outside_the_allow_list(tmp_path, group, how):
    marker = tmp_path / "pwned"
    mine = _user_config(tmp_path / "mine", {f"{group}/evil.yaml": MALICIOUS[group].format(marker=marker)})
    args = ["--config-dir", str(mine), "train"] if how == "--config-dir" else ["train"]
    env = {"DLRUN_CONFIG_DIR": str(mine)} if how == "DLRUN_CONFIG_DIR" else {}
    result = dlrun_in_process(*args, *FAST, f"{group}=evil", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "_target_" in result.stderr
        and "not an allowed builder" in result.stderr
        and "DLRUN_ALLOWED_TARGETS" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert run_dirs(tmp_path) == []


def test_a_module_outside_the_allow_list_is_not_even_imported(tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "sneaky.py").write_text(
        f"open({str(marker)!r}, 'w').close()  # runs on import\ndef build(**kwargs):\n    pass\n"
    )
    mine = _user_config(tmp_path / "mine", {"model/sneaky.yaml": "_target_: sneaky.build\n"})
    result = dlrun_in_process(
        "--config-dir",
        str(mine),
        "train",
        *FAST,
        "model=sneaky",
        cwd=tmp_path,
        env={"PYTHONPATH": _pythonpath(tmp_path)},
    )
    assert result.returncode == 2 and "model._target_='sneaky.build': not an allowed builder" in result.stderr
    assert not marker.exists()


def test_hydra_callbacks_in_a_config_cannot_run_code_either(tmp_path):
    # hydra.callbacks are instantiated by Hydra itself, whose own target policy refuses such targets.
    marker = tmp_path / "pwned"
    experiment = (
        "# @package _global_\nhydra:\n  callbacks:\n    boom:\n      _target_: subprocess.Popen\n"
        f"      args: [touch, '{marker}']\n"
    )
    mine = _user_config(tmp_path / "mine", {"experiment/evil.yaml": experiment})
    result = dlrun_in_process("--config-dir", str(mine), "train", *FAST, "experiment=evil", cwd=tmp_path)
    assert result.returncode == 2 and "subprocess.Popen" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


TINY_MODEL = """
from torch import nn


def build_tiny(n_inputs, n_outputs, hidden=8):
    return nn.Sequential(nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, n_outputs))
"""


def test_a_package_the_user_allows_works(tmp_path):
    _user_config(tmp_path / "site", {"mypkg/__init__.py": "", "mypkg/models.py": TINY_MODEL})
    mine = _user_config(tmp_path / "mine", {"model/tiny.yaml": "_target_: mypkg.models.build_tiny\nhidden: 5\n"})
    env = {"PYTHONPATH": _pythonpath(tmp_path / "site")}
    refused = dlrun_in_process("--config-dir", str(mine), "train", *FAST, "model=tiny", cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "DLRUN_ALLOWED_TARGETS" in refused.stderr
    allowed = dlrun_in_process(
        "--config-dir",
        str(mine),
        "train",
        *FAST,
        "model=tiny",
        "hydra.run.dir=r",
        cwd=tmp_path,
        env={**env, "DLRUN_ALLOWED_TARGETS": "otherpkg, mypkg"},
    )
    assert allowed.returncode == 0, allowed.stderr
    summary = read_summary(tmp_path / "r")
    assert summary["status"] == "completed" and summary["n_params"] == (2 * 5 + 5) + (5 + 1)


# ------------------------------------------------------------------ checkpoints carrying code

PICKLED_CODE = """
import sys, torch

class Payload:
    def __reduce__(self):
        return (exec, ("open(%r, 'w').close()" % sys.argv[2],))

torch.save({"format": "dlrunner-checkpoint-1", "model": Payload(), "optimizer": {}, "step": 1}, sys.argv[1])
"""


def _pickled_code_checkpoint(path: Path, marker: Path) -> Path:
    subprocess.run([sys.executable, "-c", PICKLED_CODE, str(path), str(marker)], check=True)
    return path


def test_the_crafted_checkpoint_does_run_code_when_loaded_unsafely(tmp_path):
    # The control: the payload used below is live; only weights_only=True keeps it from running.
    checkpoint = _pickled_code_checkpoint(tmp_path / "evil.pt", tmp_path / "ran")
    subprocess.run(
        [sys.executable, "-c", f"import torch; torch.load({str(checkpoint)!r}, weights_only=False)"], check=True
    )
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("key", ["trainer.resume", "transfer.checkpoint"])
def test_a_checkpoint_carrying_pickled_code_is_refused(tmp_path, key):
    marker = tmp_path / "pwned"
    checkpoint = _pickled_code_checkpoint(tmp_path / "evil.pt", marker)
    result = dlrun_in_process("train", *FAST, f"{key}={checkpoint}", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"{key}='{checkpoint}': refused: it holds pickled Python objects (" in result.stderr
        and "exec)" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert run_dirs(tmp_path) == []


def test_checkpoints_written_before_weights_only_still_resume(tmp_path):
    # Earlier versions stored the input normalisation as numpy arrays: plain numbers, still loaded.
    import numpy as np
    import torch

    first = dlrun_in_process("train", *FAST, "hydra.run.dir=r", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    state = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
    state["normalization"] = {name: np.asarray(value) for name, value in state["normalization"].items()}
    torch.save(state, tmp_path / "old.pt")
    resumed = dlrun_in_process(
        "train",
        *FAST[:-3],
        "trainer.steps=6",
        "trainer.eval_every=2",
        "trainer.resume=old.pt",
        "hydra.run.dir=r2",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert read_summary(tmp_path / "r2")["resumed_from"] == {"checkpoint": "old.pt", "step": 4}


# ------------------------------------------------------------------ secrets


@pytest.mark.slow  # W&B's service in real processes, several seconds
def test_no_secret_from_the_environment_reaches_any_file(tmp_path):
    pytest.importorskip("wandb", reason="wandb is a test extra: pip install -e '.[test]'")
    secrets = {"WANDB_API_KEY": "fake0wandb0key0" + "5e" * 13, "MY_SECRET_TOKEN": "tok-planted-s3cret-42"}
    # Everything W&B writes outside the run folder goes under tmp_path too, so every file is searched.
    homes = {
        name: str(tmp_path / "wandb-home" / name.lower())
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR")
    }
    env = {**secrets, **homes}
    if shutil.which("git"):  # a credential in the git remote of the working directory, as on many clusters
        for command in (
            ["init", "-q"],
            ["remote", "add", "origin", f"https://user:{secrets['MY_SECRET_TOKEN']}@example.com/x.git"],
            ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"],
        ):
            subprocess.run(["git", *command], cwd=tmp_path, check=True)
    trained = run_dlrun(
        "train",
        *FAST,
        "logger=wandb",
        "logger.mode=offline",
        "logger.notes=visible-note-7",
        "logger.log_checkpoint=true",
        "hydra.run.dir=r",
        cwd=tmp_path,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr
    reported = run_dlrun("report", "r", cwd=tmp_path, env=env)
    assert reported.returncode == 0, reported.stderr

    files = [p for p in tmp_path.rglob("*") if p.is_file() and ".git" not in p.relative_to(tmp_path).parts]
    [wandb_file] = [p for p in files if p.suffix == ".wandb"]
    assert b"visible-note-7" in wandb_file.read_bytes()  # the binary file is searchable: what is logged is there
    assert (tmp_path / "r" / "report.html") in files and (tmp_path / "r" / "provenance.json") in files
    for value in secrets.values():
        leaked = [str(p.relative_to(tmp_path)) for p in files if value.encode() in p.read_bytes()]
        assert leaked == [], f"{value} written to {leaked}"
        assert value not in trained.stdout + trained.stderr + reported.stdout + reported.stderr


def test_a_config_that_reads_a_secret_from_the_environment_is_refused(tmp_path):
    # A config handed to you could copy a key into the run folder and W&B: notes: ${oc.env:...}
    secret = "tok-planted-s3cret-42"
    mine = _user_config(
        tmp_path / "mine",
        {"experiment/leak.yaml": "# @package _global_\nlogger:\n  notes: ${oc.env:MY_SECRET_TOKEN}\n"},
    )
    result = dlrun_in_process(
        "--config-dir", str(mine), "train", *FAST, "experiment=leak", cwd=tmp_path, env={"MY_SECRET_TOKEN": secret}
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "logger.notes='<the value of $MY_SECRET_TOKEN>': a secret from the environment" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert run_dirs(tmp_path) == [] and not (tmp_path / "outputs").exists()
