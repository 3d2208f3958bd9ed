"""Successive halving (dlrunner.search.pruning): rungs, who is pruned, directions, resume."""

from __future__ import annotations

import json
import math
import random

import pytest

from dlrunner.search.pruning import SuccessiveHalving


def curves(n=30, seed=0):
    """Learning curves whose order at any step is the order at the end, plus a little noise."""
    rng = random.Random(seed)
    finals = [rng.uniform(0.05, 0.5) for _ in range(n)]
    return finals, lambda trial, step: finals[trial] + 0.5 / step + rng.gauss(0, 0.002)


def test_rungs_sit_at_min_steps_times_powers_of_the_reduction_factor():
    assert SuccessiveHalving(max_steps=1000, min_steps=10, reduction_factor=3).rungs == [10, 30, 90, 270, 810]
    assert SuccessiveHalving(max_steps=27, min_steps=1, reduction_factor=3).rungs == [1, 3, 9]
    assert SuccessiveHalving(max_steps=100, min_steps=25, reduction_factor=2).rungs == [25, 50]


@pytest.mark.parametrize(
    "steps, eval_every, rungs",
    [(500, 1, [56, 168]), (1500, 250, [250, 750]), (90, 10, [10, 30]), (6000, 250, [750, 2250])],
)
def test_the_default_first_rung_leaves_two_rungs_rounded_up_to_whole_evaluations(steps, eval_every, rungs):
    """1/eta**2 of the training rounded up: 500 steps give 56 and 168, not 55, 165 and a third rung
    at 495 of 500 (where pruning saves nothing)."""
    from dlrunner.search.pruning import default_min_steps

    min_steps = default_min_steps(steps, 3, eval_every)
    assert SuccessiveHalving(max_steps=steps, min_steps=min_steps, reduction_factor=3).rungs == rungs


@pytest.mark.parametrize(
    "settings",
    [
        dict(max_steps=10, min_steps=10),
        dict(max_steps=10, min_steps=0),
        dict(max_steps=10.5),
        dict(max_steps=10, reduction_factor=1),
        dict(max_steps=10, direction="down"),
    ],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        SuccessiveHalving(**settings)


def run(halving, n, curve, steps):
    stopped = {}
    for trial in range(n):
        for step in steps:
            if halving.report(trial, step, curve(trial, step)) == "prune":
                stopped[trial] = step
                break
    return stopped


def test_keeps_about_one_in_eta_per_rung_and_the_best_trial_trains_to_the_end():
    finals, curve = curves()
    halving = SuccessiveHalving(max_steps=90, min_steps=10, reduction_factor=3)
    steps = list(range(10, 91, 10))
    stopped = run(halving, 30, curve, steps)
    best = min(range(30), key=lambda t: finals[t])
    assert best not in stopped
    at_first_rung = len(halving.scores[10])
    past_first = at_first_rung - sum(1 for s in stopped.values() if s == 10)
    assert at_first_rung == 30 and past_first <= 30 // 3 + 3  # the first min_peers always go on
    spent = sum(stopped.get(t, 90) for t in range(30))
    assert spent < 0.5 * 30 * 90
    assert all(halving.steps_saved(t) == 90 - s for t, s in stopped.items())
    # A pruned trial's score is comparable at its rung only: it is there, and not above.
    trial, rung = next(iter(halving.pruned.items()))
    assert halving.score_at(trial, rung) is not None and halving.score_at(trial, 90) is None
    assert halving.report(trial, 90, 0.0) == "prune"  # once pruned, always pruned


def test_maximize_keeps_the_high_scores_and_diverged_trials_are_pruned():
    halving = SuccessiveHalving(max_steps=9, min_steps=1, reduction_factor=3, direction="maximize")
    decisions = [halving.report(n, 1, acc) for n, acc in enumerate([0.5, 0.6, 0.2, 0.9, 0.1])]
    assert decisions == ["continue", "continue", "prune", "continue", "prune"]
    assert halving.score_at(3, 1) == 0.9
    fresh = SuccessiveHalving(max_steps=9, min_steps=1)
    assert fresh.report(0, 1, float("nan")) == "prune" and fresh.report(1, 1, None) == "prune"


def test_reports_between_rungs_count_at_the_next_rung():
    halving = SuccessiveHalving(max_steps=100, min_steps=10, reduction_factor=3, min_peers=1)
    assert halving.report("a", 5, 0.1) == "continue" and halving.scores[10] == {}
    assert halving.report("a", 12, 0.3) == "continue" and halving.score_at("a", 10) == 0.3
    # A trial whose first report is past two rungs is judged at both.
    assert halving.report("b", 40, 0.2) == "continue" and set(halving.scores[30]) == {"b"}


def test_a_resumed_sweep_decides_the_same_as_one_that_never_stopped():
    _, curve = curves(seed=4)
    steps = list(range(10, 91, 10))
    values = {(t, s): curve(t, s) for t in range(24) for s in steps}
    whole = SuccessiveHalving(max_steps=90, min_steps=10, reduction_factor=3)
    straight = run(whole, 24, lambda t, s: values[(t, s)], steps)
    first = SuccessiveHalving(max_steps=90, min_steps=10, reduction_factor=3)
    run(first, 12, lambda t, s: values[(t, s)], steps)
    state = json.loads(json.dumps(first.to_dict()))  # through a file, as a sweep would keep it
    resumed = SuccessiveHalving.from_dict(state)
    later = {}
    for trial in range(12, 24):
        for step in steps:
            if resumed.report(trial, step, values[(trial, step)]) == "prune":
                later[trial] = step
                break
    assert {t: s for t, s in straight.items() if t >= 12} == later
    assert resumed.pruned == whole.pruned and resumed.to_dict() == whole.to_dict()
    assert not math.isnan(sum(resumed.scores[10].values()))


def test_trials_that_reach_a_rung_at_once_are_judged_together():
    # A stack's 6 trials reach the rung at the same step, listed in row order: the best 6 // 3 = 2
    # go on, wherever they sit. One by one, the first min_peers = 3 would go on whatever their scores.
    errors = [0.9, 0.8, 0.7, 0.2, 0.6, 0.1]
    together = SuccessiveHalving(max_steps=9, min_steps=1, reduction_factor=3)
    decisions = together.report_together([(trial, 1, error) for trial, error in enumerate(errors)])
    assert [trial for trial, d in enumerate(decisions) if d == "continue"] == [3, 5]
    one_by_one = SuccessiveHalving(max_steps=9, min_steps=1, reduction_factor=3)
    kept = [trial for trial, error in enumerate(errors) if one_by_one.report(trial, 1, error) == "continue"]
    assert kept[:3] == [0, 1, 2]
    # Judged at each rung in turn, against every score there; a pruned trial stays pruned.
    assert together.report_together([(3, 3, 0.3), (5, 3, 0.1), (0, 3, 0.0)]) == ["continue", "continue", "prune"]
    assert together.scores[3] == {"3": 0.3, "5": 0.1}
    # One report on its own is decided as report() decides it.
    alone, listed = SuccessiveHalving(max_steps=9, min_steps=1), SuccessiveHalving(max_steps=9, min_steps=1)
    for trial, error in enumerate(errors):
        assert alone.report(trial, 1, error) == listed.report_together([(trial, 1, error)])[0]
    assert alone.to_dict() == listed.to_dict()


def test_reports_judged_together_replay_together_from_the_shared_file(tmp_path):
    from dlrunner.search.pruning import SharedHalving

    path = tmp_path / "rungs.jsonl"
    shared = SharedHalving(path, max_steps=9, min_steps=1, reduction_factor=3)
    errors = [0.9, 0.8, 0.7, 0.2, 0.6, 0.1]
    decisions = shared.report_together([(trial, 1, error) for trial, error in enumerate(errors)])
    assert len(path.read_text().splitlines()) == 1  # one line: a replay judges them together again
    replayed = shared.replay(path.read_text().splitlines())
    assert replayed.pruned == {0: 1, 1: 1, 2: 1, 4: 1} and decisions.count("continue") == 2
    # A resumed stack reporting the same rung again adds nothing and gets the same decisions.
    assert shared.report_together([(trial, 1, error) for trial, error in enumerate(errors)]) == decisions
    assert len(path.read_text().splitlines()) == 1
    # A file written one report per line (before) replays as it did.
    single = tmp_path / "single.jsonl"
    single.write_text("".join(json.dumps({"trial": t, "step": 1, "value": e}) + "\n" for t, e in enumerate(errors)))
    assert shared.replay(single.read_text().splitlines()).pruned == {4: 1}


def test_a_report_at_the_last_step_never_prunes():
    halving = SuccessiveHalving(max_steps=9, min_steps=1, reduction_factor=3, min_peers=1)
    assert halving.report(0, 1, 0.1) == "continue"
    assert halving.report(1, 9, 0.9) == "continue" and 1 not in halving.pruned


def test_processes_sharing_a_file_decide_as_one_pruner_and_a_resume_replays_it(tmp_path):
    from multiprocessing import get_context

    from dlrunner.search.pruning import SharedHalving

    _, curve = curves(seed=2)
    steps = [10, 30, 90]
    values = {(t, s): curve(t, s) for t in range(18) for s in steps}
    path = tmp_path / "rungs.jsonl"
    settings = dict(max_steps=90, min_steps=10, reduction_factor=3)
    # Two processes report interleaved trials; the file's order is the history every decision used.
    with get_context("spawn").Pool(2) as pool:
        pool.starmap(
            _report_all,
            [
                (str(path), settings, list(range(0, 18, 2)), values),
                (str(path), settings, list(range(1, 18, 2)), values),
            ],
        )
    shared = SharedHalving(path, **settings)
    replayed = shared.replay(path.read_text().splitlines())
    alone = SuccessiveHalving(**settings)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        alone.report(record["trial"], record["step"], record["value"])
    assert replayed.to_dict() == alone.to_dict() and replayed.pruned
    # A resumed trial that reports a rung again gets the decision it got before.
    trial, rung = next(iter(replayed.pruned.items()))
    assert shared.report(trial, rung, values[(trial, rung)]) == "prune"
    survivor = next(t for t in range(18) if t not in replayed.pruned)
    lines = len(path.read_text().splitlines())
    assert shared.report(survivor, 30, values[(survivor, 30)]) == "continue"
    assert shared.report(survivor, 50, 0.99) == "continue"  # past rungs it has scores at: nothing new
    assert len(path.read_text().splitlines()) == lines  # reports that decide nothing are not history
    with open(path, "a") as handle:
        handle.write('{"trial": 5, "st')  # killed mid-write: the replay skips it
    assert (
        shared.replay(path.read_text().splitlines()).to_dict()
        == SharedHalving(path, **settings).replay(path.read_text().splitlines()[:-1]).to_dict()
    )


def _report_all(path, settings, trials, values):
    from dlrunner.search.pruning import SharedHalving

    shared = SharedHalving(path, **settings)
    for trial in trials:
        for step in (10, 30, 90):
            if shared.report(trial, step, values[(trial, step)]) == "prune":
                break
