"""scripts/bench_search.py's accounting of what a search spent until it reached a target (pure
functions; the benchmark's trainings are run by hand, see BENCHMARKS.md)."""

import importlib.util
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_search.py"
spec = importlib.util.spec_from_file_location("bench_search", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def trial(error, status="completed", steps=500, seconds=2.0):
    return {"error": error, "status": status, "steps": steps, "seconds": seconds}


def test_spent_to_reach_counts_every_trial_up_to_the_first_one_at_the_target():
    records = [
        trial(0.40),
        trial(0.20, status="pruned", steps=55, seconds=0.5),  # below the target, but never picked
        trial(None, status="diverged", steps=120, seconds=1.0),
        trial(0.33, seconds=3.0),
        trial(0.30),
    ]
    assert bench.spent_to_reach(records, 0.35) == (500 + 55 + 120 + 500, 2.0 + 0.5 + 1.0 + 3.0)
    assert bench.spent_to_reach(records, 0.40) == (500, 2.0)
    assert bench.spent_to_reach(records, 0.25) is None


def test_spent_to_reach_without_wall_times():
    records = [trial(0.5, seconds=None), trial(0.3, seconds=None)]
    assert bench.spent_to_reach(records, 0.3) == (1000, None)


def test_median_reached_counts_a_run_that_never_got_there_as_infinite():
    assert bench.median_reached([3, None, 5]) == 5
    assert bench.median_reached([1, None, None]) == math.inf
    assert bench.share(math.inf, 10) == "never"
    assert bench.share(2500, 12500) == "2500 (0.20)"
    assert bench.share(None, 10) == "–"
