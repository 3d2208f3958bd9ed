"""`dlrun compare`: runs side by side, and the best by the optimizing metric among the runs that
meet the satisficing thresholds (SPEC E4: accuracy subject to latency <= 100 ms picks B, 92% at
95 ms, over C, 95% at 1500 ms)."""

from __future__ import annotations

import json
from pathlib import Path

from dlrunner.errors import ConfigError, Problem
from dlrunner.search.constraints import check_constraints, lookup, parse_constraint

IGNORED_CONFIG = ("logger.", "trainer.progress", "trainer.resume")  # settings that do not change a result

# Config keys that choose the examples a dev error is measured on: runs differing there do not compare.
DEV_SET_KEYS = ("data.source", "data.split", "data.target", "data.task")
UNFINISHED = ("pruned", "interrupted")  # numbers from part-way through training: shown, never best


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders: each path is a run folder (with summary.json) or a folder holding runs (a sweep, a multirun)."""
    runs = []
    for path in paths:
        if (path / "summary.json").is_file():
            runs.append(path)
        elif path.is_dir():
            found = sorted((p.parent for p in path.glob("**/summary.json")), key=numbered_order)
            if not found:
                raise ConfigError(
                    Problem(
                        "RUN",
                        str(path),
                        "no summary.json in that folder or below it: give run folders or a sweep folder",
                    )
                )
            runs += found
        else:
            raise ConfigError(Problem("RUN", str(path), "no such folder"))
    return runs


def numbered_order(path: Path) -> list[tuple]:
    """Folders in order, numbered ones by their number: a sweep's trial 2 before trial 10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def flatten(node, prefix: str = "") -> dict:
    """A nested config as dotted keys: {"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}."""
    if not isinstance(node, dict):
        return {prefix[:-1]: node}
    flat = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def config_differences(summaries: list[dict]) -> list[str]:
    """The config keys whose values differ between the runs (what was varied)."""
    flats = [flatten(s.get("config") or {}) for s in summaries]
    keys = sorted(set().union(*flats))
    differing = [
        k
        for k in keys
        if not k.startswith(IGNORED_CONFIG) and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1
    ]
    # Where the runs call different builders (model=logreg against model=mlp), the builder is what
    # was varied, and a key under it that differs only because one builder has it and the other not
    # is left out; one that also differs between runs of the same builder (keep_prob) was varied too.
    swapped = {k[: -len("_target_")] for k in differing if k.endswith("._target_")}

    def varied_within_a_builder(key: str) -> bool:
        prefix = next((p for p in swapped if key.startswith(p)), None)
        if prefix is None or key.endswith("._target_"):
            return True
        values: dict[str, set] = {}
        for flat in flats:
            values.setdefault(json.dumps(flat.get(prefix + "_target_")), set()).add(json.dumps(flat.get(key)))
        return any(len(seen) > 1 for seen in values.values())

    return [k for k in differing if varied_within_a_builder(k)]


def compare(
    paths: list[Path], objective: str | None = None, constraints: list[str] = (), maximize: bool | None = None
) -> dict:
    """Read the runs, find what differs, and choose the best that meets every constraint."""
    for text in constraints:
        try:
            parse_constraint(text)
        except ValueError as err:
            raise ConfigError(Problem("--satisfy", text, str(err))) from None
    runs = find_runs(paths)
    summaries = []
    for run in runs:
        try:
            summaries.append(json.loads((run / "summary.json").read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(Problem("RUN", str(run), f"summary.json cannot be read ({err})")) from None
    # A run resumed in another folder is compared there (its summary says where: status continued).
    finished = [(run, s) for run, s in zip(runs, summaries) if "metrics" in s and s.get("status") != "continued"]
    if not finished:
        raise ConfigError(
            Problem("RUN", [str(p) for p in paths], "none of these runs finished (their summaries hold no metrics)")
        )
    first_metric = finished[0][1].get("metric") or {}
    if objective is None:
        chosen = first_metric.get("dev") is not None and first_metric.get("name") != "error"
        objective = "metric.dev" if chosen else "metrics.dev.error"
    if maximize is None:
        maximize = (
            bool(first_metric.get("higher_is_better"))
            if objective == "metric.dev"
            else objective.endswith(("accuracy", "f1", "precision", "recall"))
        )
    candidates = [{**s, "run": str(run)} for run, s in finished]
    if all(lookup(c, objective) is None for c in candidates):
        raise ConfigError(
            Problem(
                "--metric",
                objective,
                "no run has that value; e.g. metrics.dev.error, metrics.dev.accuracy, metric.dev, "
                "satisficing.latency_ms",
            )
        )
    for text in constraints:  # a misspelt path would make every run fail the threshold
        path = parse_constraint(text)[0]
        if all(not isinstance(lookup(c, path), (int, float)) for c in candidates):
            raise ConfigError(
                Problem(
                    "--satisfy",
                    text,
                    f"no run has a number at {path!r}; e.g. satisficing.latency_ms, n_params, metrics.dev.accuracy",
                )
            )
    eligible = [  # a pruned or interrupted run's numbers are from part-way: never the best
        c
        for c in candidates
        if c.get("status") not in UNFINISHED
        and check_constraints(c, list(constraints))[0]
        and isinstance(lookup(c, objective), (int, float))
    ]
    best = (max if maximize else min)(eligible, key=lambda c: lookup(c, objective)) if eligible else None
    differing = config_differences([s for _, s in finished])
    rows = []
    for candidate in candidates:
        flat = flatten(candidate.get("config") or {})
        met, seen = check_constraints(candidate, list(constraints))
        rows.append(
            {
                "run": candidate["run"],
                "config": {k: flat[k] for k in differing if k in flat},  # a key a run lacks is left out
                "objective": lookup(candidate, objective),
                "dev_error": lookup(candidate, "metrics.dev.error"),
                "satisficing": candidate.get("satisficing"),
                "constraints": seen,
                "meets_constraints": met,
                "verdict": lookup(candidate, "diagnosis.verdict"),
                "status": candidate.get("status"),
                "best": best is not None and candidate["run"] == best["run"],
            }
        )
    unfinished = [str(run) for run, s in zip(runs, summaries) if "metrics" not in s]
    continued = {str(run): s.get("continued_in") for run, s in zip(runs, summaries) if s.get("status") == "continued"}
    return {
        "objective": objective,
        "maximize": maximize,
        "constraints": list(constraints),
        "differing": differing,
        "runs": rows,
        "best": best["run"] if best else None,
        "unfinished": unfinished,
        "continued": continued,
    }


def print_comparison(result: dict, console) -> None:
    """The runs as a table, one row a run; a table wider than the console is shown as one block
    a run instead (values are never cut: the differing config keys are what compare is for)."""
    from rich.markup import escape
    from rich.table import Table

    from dlrunner.console import table_fits

    headers = ["", "run", *result["differing"], result["objective"]]
    if result["objective"] != "metrics.dev.error":
        headers.append("dev error")
    headers += ["params", "latency ms", "train s"] + (["meets"] if result["constraints"] else []) + ["verdict"]
    right = set(headers[2 + len(result["differing"]) : -1]) - {"meets"}
    common = _common_parent([row["run"] for row in result["runs"]])
    rows = []
    for row in result["runs"]:
        measured = row["satisficing"] or {}
        name = row["run"][len(common) :] or row["run"]
        marked = row["status"] not in (None, "completed")  # pruned, interrupted, diverged: say so
        cells = ["★" if row["best"] else "", name + (f" ({row['status']})" if marked else "")]
        cells += [_shown(row["config"][key]) if key in row["config"] else "-" for key in result["differing"]]
        cells.append(_number(row["objective"]))
        if result["objective"] != "metrics.dev.error":
            cells.append(_number(row["dev_error"]))
        cells += [
            f"{measured.get('n_params', 0):,}" if measured else "",
            _number(measured.get("latency_ms")),
            _number(measured.get("train_s")),
        ]
        if result["constraints"]:
            cells.append("[green]yes[/green]" if row["meets_constraints"] else "[red]no[/red]")
        cells.append(row["verdict"] or "")
        rows.append(cells)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left", no_wrap=True)
    for cells in rows:
        table.add_row(*cells)
    if table_fits(console, table):
        console.print(table)
    else:  # one block a run, every value whole
        for cells in rows:
            console.print(f"{cells[0] or '-'} {escape(cells[1])}", highlight=False)
            for header, cell in zip(headers[2:], cells[2:]):
                if cell not in ("", "-"):  # what a run does not have is not listed
                    console.print(f"    {escape(header)}: {cell}", highlight=False)
    direction = "highest" if result["maximize"] else "lowest"
    rule = f" among the runs meeting {', '.join(result['constraints'])}" if result["constraints"] else ""
    if result["best"]:
        console.print(f"★ best: {result['best']} ({direction} {result['objective']}{rule})", highlight=False)
    elif result["constraints"]:
        console.print(f"[red]No run meets {', '.join(result['constraints'])}[/red]", highlight=False)
    else:
        console.print("[red]No run finished its training: none is best[/red]", highlight=False)
    other_data = [key for key in result["differing"] if key.startswith(DEV_SET_KEYS)]
    if other_data:
        console.print(
            f"[yellow]note: the runs differ in {', '.join(other_data[:3])}{', ...' if len(other_data) > 3 else ''}: "
            "their errors are measured on "
            "different dev sets and do not compare; compare runs of one data set[/yellow]",
            highlight=False,
        )
    for run in result["unfinished"]:
        console.print(f"[yellow]not finished (no metrics): {run}[/yellow]", highlight=False)
    for run, where in result.get("continued", {}).items():
        console.print(f"[dim]interrupted, continued in {where}: {run}[/dim]", highlight=False)


def _common_parent(paths: list[str]) -> str:
    if len(paths) < 2:
        return ""
    parts = [p.split("/") for p in paths]
    common = []
    for pieces in zip(*parts):
        if len(set(pieces)) != 1:
            break
        common.append(pieces[0])
    return "/".join(common) + "/" if common else ""


def _number(value) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _shown(value) -> str:
    from rich.markup import escape

    if isinstance(value, float):
        return _number(value)  # 4 significant digits, as the sweep's table shows them
    return escape(json.dumps(value) if isinstance(value, (list, dict)) else str(value))
