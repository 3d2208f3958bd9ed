"""The end of a sweep: the best trials per round as a table, and what the winner leaves (sweep/best.py)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from dlrunner.search.ledger import read_ledger
from dlrunner.sweep.best import rerun_command, write_best, write_optimization_results


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def finish(search, sweep_dir: Path, settings: dict, dlrun: bool, console: Console | None = None) -> dict | None:
    """Print the best trials per round; write optimization_results.yaml and best.yaml; the best record."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # logs and pipes: keep the table's rows whole
    records = {r["number"]: r for r in read_ledger(sweep_dir / "trials.jsonl")}
    minimize = settings["direction"] == "minimize"
    # A task that returns a number is judged by it; hydra.sweeper.objective names a path in a mapping.
    numbers = any(r.get("objective_from") == "return value" for r in records.values())
    objective = "the returned value" if numbers else settings["objective"]
    verdicts = any(r.get("verdict") for r in records.values())  # dlrun's diagnosis; other apps have none
    table = Table(title=f"Sweep: best trials per round ({objective}, {settings['direction']})", title_justify="left")
    for column in ("round", "trial", "objective", *search.space, *(["verdict"] if verdicts else []), "status"):
        table.add_column(column, overflow="fold")
    for round_number in range(1, len(search.regions) + 1):
        in_round = [t for t in search.trials if t.round == round_number and t.eligible]
        for trial in sorted(in_round, key=lambda t: t.value if minimize else -t.value)[: settings["top_k"]]:
            record = records.get(trial.number, {})
            table.add_row(
                str(round_number),
                str(trial.number),
                _short(trial.value),
                *(_short(trial.params[k]) for k in search.space),
                *([str(record.get("verdict") or "")] if verdicts else []),
                trial.status,
            )
    console.print(table)
    counts = {}
    for trial in search.trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    ineligible = sum(1 for t in search.trials if t.status == "completed" and not t.eligible)
    console.print(
        f"Trials: {len(search.trials)} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}"
        f"{f', {ineligible} outside the constraints' if ineligible else ''})",
        highlight=False,
    )
    best = search.best()
    if not best:
        reason = "within the constraints" if settings["constraints"] else "with a number as its objective"
        console.print(f"[yellow]No eligible trial: none completed {reason}.[/yellow]")
        return None
    trial = best[0]
    record = records[trial.number]
    write_optimization_results(sweep_dir, record["params"], trial.value)
    best_config = write_best(Path(record["run_dir"]), record["overrides"], sweep_dir)
    console.print(
        f"Best: trial {trial.number} (round {trial.round}), {objective} = {_short(trial.value)}",
        highlight=False,
    )
    console.print(f"  run folder: {record['run_dir']}", highlight=False)
    if best_config:
        console.print(f"  train it again: {rerun_command(sweep_dir, dlrun)}", highlight=False, soft_wrap=True)
    return record
