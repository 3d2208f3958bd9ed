"""What the shell sees of dlrun: completion answered to a real bash, the help, --version, and Hydra's
flags anywhere on the line."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from helpers import dlrun_executable, dlrun_in_process, run_dlrun

QUERIES = {
    ("dlrun", "tr"): ["train"],
    ("dlrun", "train", "model", "="): ["alexnet", "cnn", "googlenet", "gru", "lenet5", "logreg", "lstm", "mlp"],
    ("dlrun", "train", "model", "=", "ml"): ["mlp"],
    ("dlrun", "sweep", "optimizer."): ["optimizer.lr=", "optimizer.beta1=", "optimizer.beta2=", "optimizer.eps="],
    ("dlrun", "train", "optimizer=sgd", "optimizer."): ["optimizer.lr=", "optimizer.batch_size="],
    ("dlrun", "train", "data.split.t"): ["data.split.train=", "data.split.test=", "data.split.train_dev="],
    ("dlrun", "train", "opt"): ["optimizer="],
    ("dlrun", "train", "--cf"): ["--cfg"],
}


def show_completion_typed_in_sh(shell: str, cwd) -> subprocess.CompletedProcess:
    """`dlrun --show-completion SHELL` run by sh, a shell Typer writes no script for: the script must
    come from the shell named on the line (Typer's own flag printed the script of the shell it found
    running dlrun, here none)."""
    command = " ".join(shlex.quote(word) for word in [*dlrun_executable(), "--show-completion", shell])
    return subprocess.run(["sh", "-c", f"{command}; exit $?"], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_bash_completes_commands_groups_options_and_keys(tmp_path):
    """Typer's own bash script (dlrun --show-completion bash), sourced in a real bash and asked as bash
    asks: COMP_WORDS split at bash's word breaks (= is one), COMP_CWORD the word under the cursor."""
    script = show_completion_typed_in_sh("bash", tmp_path)
    assert script.returncode == 0 and "complete -o default -F _dlrun_completion dlrun" in script.stdout
    (tmp_path / "completion.sh").write_text(script.stdout)
    lines = [f"source {tmp_path / 'completion.sh'}"]
    for words in QUERIES:
        quoted = " ".join(f"'{w}'" for w in words)
        lines.append(
            f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; COMPREPLY=(); _dlrun_completion dlrun; "
            'printf "%s\\t" "${COMPREPLY[@]}"; echo'
        )
    result = subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answers = result.stdout.splitlines()
    got = {words: [w for w in answer.split("\t") if w] for words, answer in zip(QUERIES, answers)}
    for words, expected in QUERIES.items():
        assert set(expected) <= set(got[words]), (words, got[words])
    assert got[("dlrun", "train", "model", "=", "ml")] == ["mlp"]  # bash replaces only the part after =
    assert "optimizer.beta1=" not in answers[4]  # the keys of the option chosen on the line (sgd), not adam's


def test_hydras_completion_flag_points_to_dlruns_own(tmp_path):
    result = dlrun_in_process("train", "-sc", "install=bash", cwd=tmp_path)
    assert result.returncode == 2 and "dlrun --install-completion" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("shell, first_line", [("zsh", "#compdef dlrun"), ("fish", "complete --command dlrun")])
def test_show_completion_prints_the_named_shells_script(tmp_path, shell, first_line):
    """Named on the line, not detected: Typer's own flag printed the script of the shell running dlrun."""
    result = show_completion_typed_in_sh(shell, tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(first_line) and "_DLRUN_COMPLETE" in result.stdout


def test_show_completion_into_a_closed_pipe_ends_quietly(tmp_path):
    """`dlrun --show-completion zsh | head -1`: the reader leaves before the script is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    result = subprocess.run(
        [*dlrun_executable(), "--show-completion", "zsh"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
        timeout=120,
    )
    os.close(write_end)
    assert result.returncode == 0 and result.stderr == ""


def test_show_completion_names_the_shells_it_knows(tmp_path):
    result = run_dlrun("--show-completion", "tcsh", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "dlrun: --show-completion 'tcsh': not a shell dlrun completes; "
        "choose one of bash, zsh, fish, powershell, pwsh\n"
    )


def test_zsh_style_queries_keep_the_word_whole(tmp_path):
    env = {"_DLRUN_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "dlrun train trainer=q"}
    result = subprocess.run(dlrun_executable(), env={**__import__("os").environ, **env}, capture_output=True, text=True)
    assert "trainer=quick" in result.stdout, result.stdout + result.stderr


def test_dash_h_is_dash_dash_help_with_dlruns_groups_and_hydras_flags(tmp_path):
    short = dlrun_in_process("train", "-h", cwd=tmp_path)
    long = dlrun_in_process("train", "--help", cwd=tmp_path)
    assert short.returncode == long.returncode == 0 and short.stdout == long.stdout
    assert "model: " in short.stdout and "mlp*" in short.stdout and "trainer: default*, quick" in short.stdout
    assert "schema/" not in short.stdout and "powered by Hydra" not in short.stdout
    assert "--cfg job|hydra|all" in short.stdout and "--multirun" in short.stdout
    assert dlrun_in_process("sweep", "-h", cwd=tmp_path).stdout.count("Config groups") == 1


def test_version(tmp_path):
    from dlrunner import __version__

    result = dlrun_in_process("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"dlrunner {__version__}"


def test_hydra_flags_anywhere_on_a_sweeps_line(tmp_path):
    from dlrunner.cli.shell import hydra_order

    assert hydra_order(["sweep=lr", "-cn", "config", "a=1", "--info", "defaults", "~b", "--cfg", "job"]) == [
        "-cn",
        "config",
        "--info",
        "defaults",
        "--cfg",
        "job",
        "sweep=lr",
        "a=1",
        "~b",
    ]
    result = dlrun_in_process(
        "sweep",
        "sweep=lr",
        "-cn",
        "config",
        "data=moons",
        "trainer=quick",
        "trainer.steps=20",
        "trainer.eval_every=20",
        "hydra.sweeper.budget=1",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "s" / "trials.jsonl").read_text())["status"] == "completed"
    assert hydra_order(["sweep=lr", "--info"]) == ["--info", "all", "sweep=lr"]  # not --info sweep=lr
    # Hydra's printing flags on a sweep's line print its config and run nothing (Hydra refuses them beside -m)
    printing = ("--cfg", "hydra", "-p", "hydra.sweeper")
    shown = dlrun_in_process("sweep", "sweep=lr", *printing, "hydra.sweep.dir=t", cwd=tmp_path)
    assert shown.returncode == 0 and "DlrunnerSweeper" in shown.stdout and not (tmp_path / "t").exists()
    info = dlrun_in_process("sweep", "sweep=lr", "--info", "hydra.sweep.dir=t", cwd=tmp_path)
    assert info.returncode == 0 and "Config search path" in info.stdout and not (tmp_path / "t").exists()


def test_completion_and_help_load_neither_torch_nor_hydras_compose(tmp_path):
    import os
    import sys

    probe = (
        "import atexit, sys\n"
        "loaded = lambda: sorted(m for m in ('torch', 'hydra.compose') if m in sys.modules)\n"
        "atexit.register(lambda: print(loaded(), file=sys.stderr))\n"
        "from dlrunner.cli import main\n"
        "main()\n"
    )
    queries = [
        ({"COMP_WORDS": "dlrun train optimizer.", "COMP_CWORD": "2", "_DLRUN_COMPLETE": "complete_bash"}, []),
        ({}, ["train", "-h"]),
    ]
    for env, args in queries:
        result = subprocess.run(
            [sys.executable, "-c", probe, *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr
