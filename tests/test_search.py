"""The search component on its own: distributions, narrowing, determinism, the ledger (no torch, no Hydra)."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections import Counter

import pytest

from dlrunner.search import Choice, CoarseToFine, IntUniform, LogUniform, OneMinusLogUniform, Pow2, Uniform
from dlrunner.search.ledger import append_ledger, read_ledger


def samples(param, n=20000, seed=0):
    rng = random.Random(seed)
    return [param.sample(rng) for _ in range(n)]


def test_log_uniform_alpha_puts_as_many_samples_in_each_decade():
    # SPEC D4: r = -4 * rand, alpha = 10^r in [1e-4, 1]: 25% of samples per decade.
    values = samples(LogUniform(1e-4, 1.0))
    assert all(1e-4 <= v <= 1.0 for v in values)
    per_decade = Counter(math.floor(math.log10(v)) for v in values if v < 1.0)
    for decade in (-4, -3, -2, -1):
        assert per_decade[decade] / len(values) == pytest.approx(0.25, abs=0.015)


def test_one_minus_log_beta_samples_near_one_as_densely_as_far_from_it():
    # beta in [0.9, 0.999]: r in [-3, -1], beta = 1 - 10^r: half in [0.9, 0.99], half in [0.99, 0.999].
    values = samples(OneMinusLogUniform(0.9, 0.999))
    assert all(0.9 <= v <= 0.999 for v in values)
    assert sum(v < 0.99 for v in values) / len(values) == pytest.approx(0.5, abs=0.015)
    # A plain uniform would put 90% of its samples below 0.99.
    assert sum(v < 0.99 for v in samples(Uniform(0.9, 0.999))) / 20000 == pytest.approx(0.909, abs=0.015)


def test_integer_and_power_of_two_ranges_hit_every_value_evenly():
    layers = Counter(samples(IntUniform(2, 4)))
    assert set(layers) == {2, 3, 4} and all(c / 20000 == pytest.approx(1 / 3, abs=0.015) for c in layers.values())
    sizes = Counter(samples(Pow2(32, 512)))
    assert set(sizes) == {32, 64, 128, 256, 512} and all(
        c / 20000 == pytest.approx(0.2, abs=0.015) for c in sizes.values()
    )
    widths = samples(IntUniform(50, 100))
    assert min(widths) == 50 and max(widths) == 100
    log_ints = samples(IntUniform(1, 1000, log=True))
    assert sum(v < 32 for v in log_ints) / len(log_ints) == pytest.approx(0.5, abs=0.03)


def test_choice_and_bad_bounds():
    assert set(samples(Choice(["relu", "tanh"]), 200)) == {"relu", "tanh"}
    for bad in (
        lambda: LogUniform(0, 1),
        lambda: LogUniform(1, 0.1),
        lambda: Uniform(2, 2),
        lambda: OneMinusLogUniform(0.9, 1.0),
        lambda: Pow2(30, 512),
        lambda: Choice([]),
    ):
        with pytest.raises(ValueError):
            bad()


def space():
    return {
        "lr": LogUniform(1e-5, 1.0),
        "beta": OneMinusLogUniform(0.8, 0.999),
        "act": Choice(["relu", "tanh", "sigmoid"]),
    }


def objective(params):
    # Best near lr = 1e-2, beta = 0.99, relu.
    return (math.log10(params["lr"]) + 2) ** 2 + (math.log10(1 - params["beta"]) + 2) ** 2 + (params["act"] != "relu")


def run(search, measure=None):
    if search.direction is None:
        search.direction = "minimize"
    while not search.done:
        for trial in search.ask():
            search.tell(trial.number, (measure or objective)(trial.params))
    return search


def test_same_seed_same_trials_and_different_seed_different_trials():
    a, b, c = (run(CoarseToFine(space(), budget=12, rounds=3, seed=s)) for s in (1, 1, 2))
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]
    assert a.regions == b.regions


def test_rounds_split_the_budget_and_record_their_region():
    search = run(CoarseToFine(space(), budget=10, rounds=3, growth=1.0, seed=0))
    assert len(search.trials) == 10 and [sum(t.round == r for t in search.trials) for r in (1, 2, 3)] == [3, 4, 3]
    assert len(search.regions) == 3
    assert search.regions[0]["lr"] == pytest.approx([1e-5, 1.0])


def test_narrowing_shrinks_around_the_best_in_each_parameters_own_scale_and_stays_inside():
    search = run(CoarseToFine(space(), budget=40, rounds=4, top_k=3, seed=0))
    widths = [math.log10(r["lr"][1]) - math.log10(r["lr"][0]) for r in search.regions]
    assert widths[-1] < widths[0] / 2
    beta_widths = [math.log10(1 - r["beta"][0]) - math.log10(1 - r["beta"][1]) for r in search.regions]
    assert beta_widths[-1] < beta_widths[0] / 2
    for region in search.regions:
        assert 1e-5 <= region["lr"][0] <= region["lr"][1] <= 1.0
        assert 0.8 <= region["beta"][0] <= region["beta"][1] <= 0.999
    best = search.best()[0]
    # The final region contains the best trial, in log space around lr = 1e-2.
    last = search.regions[-1]
    assert last["lr"][0] <= best.params["lr"] <= last["lr"][1]
    assert "relu" in last["act"] and len(last["act"]) <= 3
    # Later rounds sample inside their region, except their exploration share.
    assert all(sum(t.source == "explore" for t in search.trials if t.round == r) >= 1 for r in (2, 3, 4))
    for trial in (t for t in search.trials if t.source == "region"):
        region = search.regions[trial.round - 1]
        assert region["lr"][0] * (1 - 1e-9) <= trial.params["lr"] <= region["lr"][1] * (1 + 1e-9)


def test_coarse_to_fine_finds_better_points_than_its_first_round():
    search = run(CoarseToFine(space(), budget=40, rounds=4, seed=3))
    first_round = min(t.value for t in search.trials if t.round == 1)
    assert search.best()[0].value <= first_round
    last_round = sorted(t.value for t in search.trials if t.round == 4 and t.source == "region")
    first = sorted(t.value for t in search.trials if t.round == 1)
    assert last_round[len(last_round) // 2] < first[len(first) // 2]


def test_failed_and_ineligible_trials_are_never_best_and_do_not_steer():
    search = CoarseToFine(space(), budget=8, rounds=2, seed=0, direction="minimize")
    trials = search.ask()
    for trial in trials:
        search.tell(
            trial.number, 0.0, status="diverged" if trial.number == 0 else "completed", eligible=trial.number != 1
        )
    search.tell(2, float("nan"))
    assert all(t.number not in (0, 1, 2) for t in search.best(10))
    search.ask()
    assert search.regions[1] != search.regions[0]


def test_random_is_one_round_and_grid_enumerates():
    assert len(run(CoarseToFine(space(), budget=9, rounds=3, method="random")).regions) == 1
    grid = run(
        CoarseToFine(
            {"lr": LogUniform(1e-3, 1e-1), "act": Choice(["relu", "tanh"])}, budget=100, method="grid", grid_points=3
        ),
        measure=lambda p: abs(math.log10(p["lr"]) + 2),
    )
    assert len(grid.trials) == 6 and {t.params["act"] for t in grid.trials} == {"relu", "tanh"}
    assert sorted({round(math.log10(t.params["lr"]), 9) for t in grid.trials}) == [-3, -2, -1]


def test_ask_refuses_before_results_are_told():
    search = CoarseToFine(space(), budget=6, rounds=2)
    search.ask()
    with pytest.raises(RuntimeError, match="tell"):
        search.ask()


def test_the_search_imports_neither_torch_nor_hydra():
    code = (
        "import sys, dlrunner.search, dlrunner.search.ledger; "
        "assert not {'torch', 'hydra', 'omegaconf'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ledger_tolerates_a_truncated_last_line(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_ledger(path, {"number": 0, "value": 0.5})
    append_ledger(path, {"number": 1, "value": 0.4})
    with open(path, "a") as handle:
        handle.write('{"number": 2, "val')  # the process was killed mid-write
    assert [r["number"] for r in read_ledger(path)] == [0, 1]
    append_ledger(path, {"number": 2, "value": 0.3})
    assert [r["number"] for r in read_ledger(path)] == [0, 1, 2]
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["number"] == 2 and len(lines) == 4  # nothing rewritten


# ---------------------------------------------------------------------- issue 24: no duplicates, exploration, API


def test_a_discrete_space_never_gets_the_same_configuration_twice():
    discrete = {"batch_size": Pow2(32, 512), "layers": IntUniform(1, 4), "act": Choice(["relu", "tanh"])}
    search = run(
        CoarseToFine(discrete, budget=30, rounds=5, top_k=3, seed=0),
        measure=lambda p: math.log2(p["batch_size"]) + p["layers"] + (p["act"] == "tanh"),
    )
    keys = [tuple(sorted(t.params.items())) for t in search.trials]
    assert len(keys) == 30 and len(set(keys)) == 30  # was 8 distinct configurations in 30 trials
    # The zoomed rounds still hold the best configuration, and report what explored.
    assert search.best()[0].params == {"batch_size": 32, "layers": 1, "act": "relu"}
    assert all(plan["explore"] >= 1 for plan in search.plans[1:])


def test_a_space_smaller_than_the_budget_is_tried_once_per_point_and_the_search_stops():
    tiny = {"batch_size": Pow2(32, 64), "act": Choice(["relu", "tanh"])}
    search = run(CoarseToFine(tiny, budget=10, rounds=3, seed=1), measure=lambda p: p["batch_size"])
    assert search.done and len(search.trials) == 4
    assert {(t.params["batch_size"], t.params["act"]) for t in search.trials} == {
        (32, "relu"),
        (32, "tanh"),
        (64, "relu"),
        (64, "tanh"),
    }


def test_rounds_grow_and_the_default_schedule_follows_the_budget():
    from dlrunner.search.narrowing import default_rounds, round_sizes

    assert [default_rounds(b) for b in (12, 25, 50, 100, 200, 500)] == [2, 3, 4, 5, 6, 7]
    growth = CoarseToFine(space()).growth
    for budget in (12, 25, 50, 100, 200, 500):
        sizes = round_sizes(budget, default_rounds(budget), growth)
        assert sum(sizes) == budget and sizes == sorted(sizes) and sizes[0] >= 5
    assert round_sizes(7, 3, 1.0) == [2, 3, 2] and round_sizes(2, 5, 1.5) == [1, 1]
    search = run(CoarseToFine(space(), budget=100, seed=0))
    sizes = [plan["trials"] for plan in search.plans]
    assert sum(sizes) == 100 and len(sizes) == 5 and sizes[0] < sizes[-1]
    # Exploration trials in later rounds come from the whole space, not the region.
    explored = [t for t in search.trials if t.source == "explore"]
    assert explored and all(t.round > 1 for t in explored)
    last = search.regions[-1]["lr"]
    assert any(not last[0] <= t.params["lr"] <= last[1] for t in explored if t.round == 5)


def test_ranking_for_the_zoom_trusts_a_good_neighbourhood_over_a_lone_lucky_result():
    from dlrunner.search.coarse_to_fine import Trial
    from dlrunner.search.narrowing import smoothed_losses

    one_d = {"lr": LogUniform(1e-4, 1.0)}
    lrs = [1e-4, 1.2e-4, 1e-2, 1.1e-2, 0.9e-2, 1e-1]
    losses = [0.10, 0.90, 0.20, 0.21, 0.22, 0.95]  # 1e-4 is a lucky draw beside a bad point
    trials = [Trial(i, 1, {"lr": lr}) for i, lr in enumerate(lrs)]
    raw_rank = sorted(range(6), key=lambda i: losses[i])
    smooth = smoothed_losses(one_d, trials, losses, neighbours=2)
    assert raw_rank[0] == 0 and min(range(6), key=lambda i: smooth[i]) in (2, 3, 4)
    assert smoothed_losses(one_d, trials, losses, neighbours=0) == losses


def test_maximize_narrows_onto_high_values_and_the_direction_is_required_to_rank():
    def accuracy(p):
        return 1 - objective(p) / 20

    search = run(CoarseToFine(space(), budget=40, rounds=4, seed=3, direction="maximize"), measure=accuracy)
    assert search.best()[0].value == max(t.value for t in search.trials)
    last = search.regions[-1]["lr"]
    assert last[0] <= 1e-2 <= last[1]
    unsure = CoarseToFine(space(), budget=6, rounds=2, seed=0)
    for trial in unsure.ask():
        unsure.tell(trial.number, 0.5)
    with pytest.raises(ValueError, match="direction"):
        unsure.ask()
    with pytest.raises(ValueError, match="direction"):
        unsure.best()
    # The former spelling still works, and a contradiction is refused.
    assert CoarseToFine(space(), minimize=False).direction == "maximize"
    assert CoarseToFine(space(), minimize=True).direction == "minimize"
    with pytest.raises(ValueError, match="contradicts"):
        CoarseToFine(space(), minimize=True, direction="maximize")


@pytest.mark.parametrize(
    "settings",
    [
        dict(margin=-1),
        dict(margin=float("nan")),
        dict(budget=1.5),
        dict(budget=0),
        dict(budget=True),
        dict(rounds=0),
        dict(top_k=2.5),
        dict(direction="max"),
        dict(explore=1.0),
        dict(growth=0.5),
        dict(stratified="yes"),
    ],
)
def test_bad_settings_are_refused_when_the_search_is_made(settings):
    with pytest.raises(ValueError):
        CoarseToFine(space(), **settings)


def test_tell_refuses_trial_numbers_that_were_never_asked():
    search = CoarseToFine(space(), budget=6, rounds=2, seed=0, direction="minimize")
    trials = search.ask()
    for bad in (-1, len(trials), 99):
        with pytest.raises(IndexError, match="no such trial"):
            search.tell(bad, 0.5)
    with pytest.raises(TypeError):
        search.tell(True, 0.5)
    with pytest.raises(ValueError, match="status"):
        search.tell(0, 0.5, status="pending")
    assert all(t.status == "pending" for t in trials)  # nothing was recorded on another trial


def test_pruned_trials_are_never_best_nor_define_the_region():
    search = CoarseToFine(space(), budget=12, rounds=2, seed=0, direction="minimize")
    trials = search.ask()
    for trial in trials:
        search.tell(trial.number, objective(trial.params))
    lowest = min(trials, key=lambda t: t.value)
    search.tell(lowest.number, -100.0, status="pruned", step=3)
    assert search.best()[0].number != lowest.number and search.trials[lowest.number].step == 3
    search.ask()
    assert lowest.number not in search.plans[1]["from"]


def test_the_docstring_examples_run():
    import doctest

    import dlrunner.search
    import dlrunner.search.pruning

    for module in (dlrunner.search, dlrunner.search.pruning):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_a_latin_hypercube_puts_one_point_in_each_slice_of_every_range():
    from dlrunner.search.narrowing import stratified

    mixed = {"lr": LogUniform(1e-4, 1.0), "batch": Pow2(32, 256), "act": Choice(["relu", "tanh", "gelu"])}
    region = {"lr": (-3.0, -1.0), "batch": Pow2(32, 256).u_bounds, "act": ["relu", "tanh", "gelu"]}
    points = stratified(mixed, region, 8, random.Random(0))
    slices = sorted(int((math.log10(p["lr"]) + 3) / 2 * 8) for p in points)
    assert slices == list(range(8))  # one learning rate in each eighth of [1e-3, 1e-1], in log scale
    assert Counter(p["batch"] for p in points) == {32: 2, 64: 2, 128: 2, 256: 2}
    assert sorted(Counter(p["act"] for p in points).values()) == [2, 3, 3]
    # The pairing across parameters is random: another seed, other configurations.
    assert stratified(mixed, region, 8, random.Random(1)) != points


def test_each_round_covers_its_region_evenly_and_independent_draws_do_not():
    def batch_sizes(search, round_number):
        return Counter(t.params["batch"] for t in search.trials if t.round == round_number and t.source == "region")

    tabular = {"lr": LogUniform(1e-4, 1.0), "batch": Pow2(32, 256)}
    measure = lambda p: (math.log10(p["lr"]) + 2) ** 2  # noqa: E731 - the batch size does not matter
    missed = 0
    for seed in range(10):
        search = run(CoarseToFine(tabular, budget=50, seed=seed), measure)
        first = search.trials[: search.plans[0]["trials"]]
        assert len(first) == 9
        # Round 1 (9 trials): every batch size tried, none more than 3 times, every decade of the learning rate.
        assert len(batch_sizes(search, 1)) == 4 and max(batch_sizes(search, 1).values()) <= 3
        assert {math.floor(math.log10(t.params["lr"])) for t in first} == {-4, -3, -2, -1}
        # A later round: one learning rate in each slice of its region, in log scale.
        lo, hi = (math.log10(v) for v in search.regions[2]["lr"])
        zoomed = [t for t in search.trials if t.round == 3 and t.source == "region"]
        slices = sorted(int((math.log10(t.params["lr"]) - lo) / (hi - lo) * len(zoomed)) for t in zoomed)
        assert slices == list(range(len(zoomed)))
        independent = run(CoarseToFine(tabular, budget=50, seed=seed, stratified=False), measure)
        missed += len(batch_sizes(independent, 1)) < 4
    assert missed >= 1  # independent draws of 9 leave out one of 4 batch sizes about a quarter of the time
    # method="random" stays plain random search: independent draws, as stratified=False's first round.
    plain = CoarseToFine(tabular, budget=9, seed=3, method="random").ask()
    assert [t.params for t in plain] == [
        t.params for t in CoarseToFine(tabular, budget=50, seed=3, stratified=False).ask()
    ]


def test_next_region_zooms_around_the_best_trials_without_changing_the_search():
    # What a sweep whose budget is raised after its last round searches next (sweep/continued.py).
    space = {"lr": LogUniform(1e-4, 1.0), "act": Choice(["relu", "tanh"])}
    search = CoarseToFine(space, budget=12, rounds=1, seed=0, direction="minimize")
    for trial in search.ask():
        search.tell(trial.number, abs(math.log10(trial.params["lr"]) + 2))  # best near lr = 1e-2
    best = search.best()[0].params
    region = search.next_region()
    assert 1e-4 < region["lr"][0] <= best["lr"] <= region["lr"][1] < 1.0  # narrower than the space, around the best
    assert best["act"] in region["act"]
    assert search.regions == [{"lr": [1e-4, 1.0], "act": ["relu", "tanh"]}] and search.done  # nothing changed
