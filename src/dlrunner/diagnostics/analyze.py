"""The course's error analysis on a finished run (SPEC E13, E14).

Three steps, as in the course:

1. ``error_analysis(run)``: the dev set's mistakes from ``analysis.json`` -- dev error, per-class
   errors, the most confused pairs (and false positives / negatives for a binary task).
2. ``write_sheet(run, analysis)``: ``RUN/error_analysis/sheet.csv``, one row per misclassified dev
   example (most confident first) with empty columns for a person to mark: a few categories,
   ``incorrectly_labelled`` and ``comments``. Inputs are drawn as PNGs next to it.
3. ``tally(sheet, dev_error)``: after marking, each category's share of the examined errors and its
   ceiling -- the dev error if that category were fixed completely, dev_error x (1 - share)
   (5% of the mistakes are dogs, dev error 10% -> 9.5% at best) -- and whether fixing incorrect
   labels comes first (the rule is ``LABEL_SHARE_THRESHOLD``, below).

Only JSON and CSV are read here (no torch import), so the command is quick.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from dlrunner.errors import ConfigError, Problem

# Categories a person marks in the sheet. Generic, as the data may be anything (the course's cat
# classifier used "dog", "great cat", "blurry", "instagram filter"); pass your own to write_sheet,
# or add columns to the sheet while marking: every extra named column is tallied as a category.
DEFAULT_CATEGORIES = ("looks_like_predicted_class", "ambiguous", "poor_quality_input", "unusual_example")
LABEL_COLUMN = "incorrectly_labelled"
COMMENTS_COLUMN = "comments"
FIXED_COLUMNS = ("index", "true", "predicted", "confidence", "input")

# When are incorrect dev labels worth fixing first (SPEC E14)? The course looks at three numbers:
# overall dev error, the part due to incorrect labels (dev_error x share marked incorrectly
# labelled) and the rest. Its two examples: 10% overall, 0.6% labels, 9.4% other -> labels are 6% of
# the error, "not the most important thing now"; 2% overall, 0.6% labels, 1.4% other -> 30% of the
# error, worth fixing, because the dev set can no longer tell a 2.1% model from a 1.9% one. We call
# labels worth fixing when they are at least a fifth of the dev error (equivalently at least a
# quarter of the error due to other causes: 0.6/9.4 = 6% vs 0.6/1.4 = 43%). 20% sits between the
# course's 6% and 30%, clear of both: with ~100 examined mistakes the share's standard error is
# about 4 points, so neither example flips on sampling noise.
LABEL_SHARE_THRESHOLD = 0.2

MAX_PICTURES = 100  # PNGs drawn per sheet; ~100 take about a second (8x8 images are written directly)
_TEXT_INPUT = 8  # inputs with at most this many values are written into the sheet instead of drawn
_NO = {"0", "0.0", "no", "n", "false", "-"}  # a cell holding one of these is not a mark


def error_analysis(run_dir: Path, limit: int = 100) -> dict:
    """The dev set's mistakes of a finished single-label classification run.

    Returns ``dev_error`` (from the confusion matrix), ``n_dev``, ``n_misclassified``,
    ``confusion_matrix`` ([true][predicted]), ``per_class`` [{class, n, errors, error,
    share_of_errors}], ``confused_pairs`` (the 10 largest off-diagonal cells: {true, predicted,
    count, share_of_errors}), ``misclassified`` (up to ``limit`` rows of analysis.json, most
    confident first), ``task``, ``n_classes``, ``run_dir``, ``summary_dev_error`` (summary.json's,
    or None), ``notes``; for a binary task also ``false_positives``, ``false_negatives``,
    ``true_positives``, ``precision``, ``recall`` and ``f1`` (None where undefined).
    """
    run_dir = Path(run_dir)
    summary, raw = _read_run(run_dir)
    matrix = [[int(c) for c in row] for row in raw["confusion_matrix"]]
    n_classes = max(len(matrix), int(summary.get("n_classes") or 0), 2 if summary.get("task") == "binary" else 0)
    matrix = [row + [0] * (n_classes - len(row)) for row in matrix] + [
        [0] * n_classes for _ in range(n_classes - len(matrix))
    ]
    n_dev = sum(map(sum, matrix))
    n_wrong = n_dev - sum(matrix[c][c] for c in range(n_classes))
    per_class = []
    for c, row in enumerate(matrix):
        n, errors = sum(row), sum(row) - row[c]
        per_class.append(
            {
                "class": c,
                "n": n,
                "errors": errors,
                "error": errors / n if n else None,
                "share_of_errors": errors / n_wrong if n_wrong else 0.0,
            }
        )
    pairs = sorted(
        ((matrix[t][p], t, p) for t in range(n_classes) for p in range(n_classes) if t != p and matrix[t][p]),
        key=lambda cell: (-cell[0], cell[1], cell[2]),
    )
    rows = sorted(raw.get("misclassified", []), key=lambda r: -r["confidence"])[: max(limit, 0)]
    result = {
        "run_dir": str(run_dir),
        "task": summary.get("task", "binary" if n_classes == 2 else "multiclass"),
        "n_classes": n_classes,
        "dev_error": n_wrong / n_dev if n_dev else 0.0,
        "n_dev": n_dev,
        "n_misclassified": n_wrong,
        "summary_dev_error": summary.get("metrics", {}).get("dev", {}).get("error"),
        "class_names": raw.get("class_names") or summary.get("class_names"),  # None: the labels were numbers
        "confusion_matrix": matrix,
        "per_class": per_class,
        "confused_pairs": [
            {"true": t, "predicted": p, "count": count, "share_of_errors": count / n_wrong}
            for count, t, p in pairs[:10]
        ],
        "misclassified": rows,
        "notes": [],
    }
    if len(rows) < min(limit, n_wrong):
        result["notes"].append(
            f"analysis.json holds {len(rows)} of the {n_wrong} misclassified dev examples "
            "(logger.max_misclassified sets how many a run keeps)"
        )
    if result["task"] == "binary":
        tp, fp, fn = matrix[1][1], matrix[0][1], matrix[1][0]
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = (
            None
            if precision is None or recall is None
            else (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        )
        result.update(
            false_positives=fp, false_negatives=fn, true_positives=tp, precision=precision, recall=recall, f1=f1
        )
    return result


def _read_run(run_dir: Path) -> tuple[dict, dict]:
    """summary.json (or {}) and analysis.json of a run folder, or a ConfigError saying what is wrong."""

    def fail(why: str):
        raise ConfigError(Problem("RUN", str(run_dir), why))

    if not run_dir.is_dir():
        fail("no such folder; give the folder of a finished classification run")
    summary_file, analysis_file = run_dir / "summary.json", run_dir / "analysis.json"
    if not summary_file.is_file() and not (run_dir / "metrics.jsonl").is_file():
        fail(
            "not a run folder (it has no summary.json or metrics.jsonl); "
            "give the folder of a finished classification run"
        )
    summary = _read_json(summary_file, fail) if summary_file.is_file() else {}
    if not analysis_file.is_file():
        task = summary.get("task")
        if summary.get("repeats"):  # trainer.repeats: the analyses are in the seeds' folders
            fail(
                f"this folder holds {len(summary['repeats']['runs'])} runs, one per seed; analyse one of them, "
                f"e.g. {run_dir / summary['repeats']['runs'][0]}"
            )
        if task in ("binary", "multiclass") and summary.get("status") in ("failed", None):
            fail(
                f"the run has no analysis.json (its status: {summary.get('status', 'unknown, no summary.json')}); "
                "error analysis needs a finished classification run"
            )
        fail(
            "the run has no analysis.json: error analysis needs a single-label classification run "
            f"(binary or multiclass, one label per example); this run's task is {task or 'unknown'}"
        )
    analysis = _read_json(analysis_file, fail)
    matrix = analysis.get("confusion_matrix")
    if not isinstance(matrix, list) or not all(isinstance(row, list) and len(row) == len(matrix) for row in matrix):
        fail("analysis.json has no square confusion_matrix; it is not one dlrunner wrote")
    return summary, analysis


def _read_json(path: Path, fail) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        fail(f"{path.name} is unreadable ({type(err).__name__}: {err})")
    if not isinstance(data, dict):
        fail(f"{path.name} is not a JSON object")
    return data


def write_sheet(
    run_dir: Path, analysis: dict, limit: int = 100, *, categories=None, pictures: int = MAX_PICTURES, console=None
) -> Path:
    """Write the error-analysis sheet of ``analysis`` (from ``error_analysis``) and return its path.

    ``RUN/error_analysis/sheet.csv`` holds up to ``limit`` misclassified dev examples, most confident
    first: index, true, predicted, confidence, input, then empty columns to fill in -- one per name
    in ``categories`` (default ``DEFAULT_CATEGORIES``), ``incorrectly_labelled`` and ``comments``.
    ``input`` is the values themselves for inputs of up to 8 values, else a link relative to the
    sheet, ``inputs/<index>.png`` (square inputs drawn as images, others as lines), for the first
    ``pictures`` rows. A sheet someone has filled in is never overwritten: the next free name
    (``sheet-2.csv``, ...) is used instead. Notes go to ``console`` when given.
    """
    categories = _check_categories(DEFAULT_CATEGORIES if categories is None else categories)
    folder = Path(run_dir) / "error_analysis"
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted(analysis["misclassified"], key=lambda r: -r["confidence"])[: max(limit, 0)]
    notes = []
    drawn = _draw_inputs(folder / "inputs", rows[: max(pictures, 0)])
    if len(drawn) < sum(len(r.get("input") or []) > _TEXT_INPUT for r in rows):
        notes.append(
            f"inputs drawn for the first {len(drawn)} rows only (pictures={pictures}); the rest show their first values"
        )
    header = list(FIXED_COLUMNS) + categories + [LABEL_COLUMN, COMMENTS_COLUMN]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [
                row["index"],
                row["true"],
                row["predicted"],
                f"{row['confidence']:.4f}",
                drawn.get(row["index"]) or _values_text(row.get("input") or []),
            ]
            + [""] * (len(categories) + 2)
        )

    path, n = folder / "sheet.csv", 1
    while path.exists() and _filled(path):
        n += 1
        path = folder / f"sheet-{n}.csv"
    if n > 1:
        notes.append(f"{folder / 'sheet.csv'} has marks in it, so it was left alone; the new sheet is {path.name}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    n_wrong = analysis.get("n_misclassified", len(rows))
    if len(rows) < n_wrong:
        notes.append(
            f"the sheet holds the {len(rows)} most confident of the {n_wrong} misclassified dev examples; "
            "confident mistakes over-represent incorrect labels, so read their shares with that in mind"
        )
    if console is not None:
        console.print(
            f"Error-analysis sheet: {escape(str(path))} ({len(rows)} examples). Mark a category with any value "
            f"(x, 1, yes), then tally it.",
            highlight=False,
        )
        for note in notes:
            console.print(f"  [dim]note: {escape(note)}[/dim]", highlight=False)
    return path


def _check_categories(categories) -> list[str]:
    names = [str(c).strip() for c in ([categories] if isinstance(categories, str) else categories)]
    reserved = set(FIXED_COLUMNS) | {LABEL_COLUMN, COMMENTS_COLUMN}
    bad = [n for n in names if not n or _column_key(n) in reserved or any(ch in n for ch in ',;\t\n"')]
    if bad or len({_column_key(n) for n in names}) != len(names):
        raise ConfigError(
            Problem(
                "--categories",
                names,
                "category names must be non-empty, distinct, without , ; tabs or "
                f"quotes, and none of {sorted(reserved)}",
            )
        )
    return names


def _values_text(values: list) -> str:
    shown = " ".join(f"{v:.3g}" for v in values[:_TEXT_INPUT])
    return shown if len(values) <= _TEXT_INPUT else f"{shown} ... ({len(values)} values)"


def _square_side(n_values: int) -> int | None:
    """The side of a square image of ``n_values`` (8 for 8x8 digits), else None; as the run report does."""
    side = round(n_values**0.5)
    return side if side >= 4 and side * side == n_values else None


def _draw_inputs(folder: Path, rows: list[dict]) -> dict[int, str]:
    """PNG per row with more than a few input values; {index: link relative to the sheet}."""
    rows = [r for r in rows if len(r.get("input") or []) > _TEXT_INPUT]
    if not rows:
        return {}
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.image import imsave

    folder.mkdir(parents=True, exist_ok=True)
    links, line_figure = {}, None
    for row in rows:
        values = np.asarray(row["input"], dtype=float)
        path = folder / f"{row['index']}.png"
        side = _square_side(len(values))
        if side:  # an image: written pixel by pixel (no figure), enlarged to >= 64 px so it can be seen
            scale = max(1, 64 // side)
            imsave(path, np.kron(values.reshape(side, side), np.ones((scale, scale))), cmap="gray_r")
        else:  # a signal or a feature vector: one reused figure, only the line changes
            if line_figure is None:
                line_figure = Figure(figsize=(3, 1.5), dpi=80)
                FigureCanvasAgg(line_figure)
                axis = line_figure.add_axes((0.12, 0.15, 0.85, 0.8))
                (line,) = axis.plot([], [], linewidth=0.8)
                axis.tick_params(labelsize=6)
            line.set_data(np.arange(len(values)), values)
            axis.relim()
            axis.autoscale_view()
            line_figure.savefig(path)
        links[row["index"]] = f"inputs/{path.name}"
    return links


def _filled(path: Path) -> bool:
    """Whether an existing sheet holds anything a person wrote (unreadable sheets count as filled)."""
    try:
        header, rows, _ = _read_sheet(path)
    except (ConfigError, OSError):
        return True
    user = [i for i, name in enumerate(header) if _column_key(name) not in FIXED_COLUMNS]
    return any(i < len(row) and row[i].strip() for row in rows for i in user)


def tally(sheet: Path, dev_error: float, *, label_threshold: float = LABEL_SHARE_THRESHOLD) -> dict:
    """Count the marks of a filled sheet: the course's "% of total" footer, with ceilings.

    A mark is any non-empty cell except 0, no, n, false and -. Rows whose index is not a number
    (blank rows, a "% of total" footer) are skipped; every extra named column is a category.
    Returns ``sheet``, ``dev_error``, ``n_examined``, ``ignored_rows``, ``unmarked`` (rows with no
    mark at all), ``categories`` [{category, count, share, dev_error_if_fixed}] (the ceiling
    dev_error x (1 - share); incorrectly_labelled last), ``labels`` {count, share,
    error_due_to_labels, error_due_to_other_causes, worth_fixing, threshold, verdict, reminders},
    and ``notes``.
    """
    sheet = Path(sheet)
    if not (0 <= dev_error <= 1):
        raise ConfigError(Problem("dev_error", dev_error, "a dev error rate between 0 and 1"))
    header, rows, ignored = _read_sheet(sheet)
    keys = [_column_key(name) for name in header]
    label_col = next((i for i, k in enumerate(keys) if k in _LABEL_ALIASES), None)
    skip = set(FIXED_COLUMNS) | _COMMENT_ALIASES
    category_cols = [i for i, k in enumerate(keys) if k and k not in skip and i != label_col]
    if not rows:
        raise ConfigError(Problem("--tally", str(sheet), "the sheet has no example rows (rows with a numeric index)"))
    n = len(rows)

    def marked(row, i):
        return i is not None and i < len(row) and row[i].strip() != "" and row[i].strip().lower() not in _NO

    def category(name, i):
        count = sum(marked(row, i) for row in rows)
        return {"category": name, "count": count, "share": count / n, "dev_error_if_fixed": dev_error * (1 - count / n)}

    table = [category(header[i].strip(), i) for i in category_cols]
    label_count = sum(marked(row, label_col) for row in rows)
    share = label_count / n
    labels = {
        "count": label_count,
        "share": share,
        "error_due_to_labels": dev_error * share,
        "error_due_to_other_causes": dev_error * (1 - share),
        "threshold": label_threshold,
        "worth_fixing": label_count > 0 and share >= label_threshold,
    }
    labels["verdict"] = (
        _label_verdict(dev_error, labels)
        if label_col is not None
        else f"Incorrect labels were not counted: the sheet has no {LABEL_COLUMN} column."
    )
    labels["reminders"] = [
        "Fix the dev and the test set together, so they keep coming from the same distribution.",
        "Examine examples the model got right as well as the ones it got wrong, or the corrected dev error is biased.",
        (
            "Random label errors in the training set matter less (deep learning is robust to them); "
            "systematic ones do matter."
        ),
    ]
    notes = []
    if label_col is not None:
        table.append(category(header[label_col].strip(), label_col))
    if n < 30:
        notes.append(
            f"only {n} examples examined: each share is uncertain by about +-{100 * (0.25 / n) ** 0.5:.0f} points; "
            "the course examines ~100"
        )
    unmarked = sum(not any(marked(row, i) for i in [*category_cols, label_col]) for row in rows)
    if unmarked:
        notes.append(
            f"{unmarked} of {n} examined errors have no mark: maybe a category is missing (add a column for it)"
        )
    return {
        "sheet": str(sheet),
        "dev_error": dev_error,
        "n_examined": n,
        "ignored_rows": ignored,
        "unmarked": unmarked,
        "categories": table,
        "labels": labels,
        "notes": notes,
    }


_LABEL_ALIASES = {
    "incorrectly_labelled",
    "incorrectly_labeled",
    "mislabelled",
    "mislabeled",
    "incorrect_label",
    "wrong_label",
}
_COMMENT_ALIASES = {"comments", "comment", "notes", "note"}


def _label_verdict(dev_error: float, labels: dict) -> str:
    due, other, share = labels["error_due_to_labels"], labels["error_due_to_other_causes"], labels["share"]
    if labels["count"] == 0:
        return "No examined error was marked as incorrectly labelled: work on the other causes."
    numbers = (
        f"{due:.2%} of the {dev_error:.2%} dev error ({share:.0%} of the examined errors) is due to incorrect labels, "
        f"{other:.2%} to other causes"
    )
    if labels["worth_fixing"]:
        return (
            f"Worth fixing the dev labels: {numbers}. That is at least {labels['threshold']:.0%} of the dev error, so "
            f"models whose dev errors differ by less than about {due:.2%} cannot be told apart on this dev set."
        )
    return (
        f"Not the first thing to fix: {numbers}. That is under {labels['threshold']:.0%} of the dev error; "
        f"the {other:.2%} from other causes is where the gains are."
    )


def _column_key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _read_sheet(path: Path) -> tuple[list[str], list[list[str]], int]:
    """Header, example rows and the number of skipped non-example rows of a sheet, however a
    spreadsheet saved it: UTF-8 with or without BOM, UTF-16, Windows-1252; , ; or tab delimited; an
    Excel "sep=" line or title rows above the header; extra columns; blank and footer rows."""
    if not path.is_file():
        raise ConfigError(
            Problem(
                "--tally",
                str(path),
                "no such file; give the sheet.csv that error analysis wrote into RUN/error_analysis/, after marking it",
            )
        )
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    lines = text.splitlines()
    hint = lines[0].strip()[4:5] if lines and lines[0].lower().startswith("sep=") else None
    for delimiter in ([hint] if hint else []) + [",", ";", "\t"]:
        table = list(csv.reader(lines, delimiter=delimiter))
        start = next((r for r, row in enumerate(table[:20]) if "index" in (_column_key(c) for c in row)), None)
        if start is not None:
            break
    else:
        raise ConfigError(
            Problem(
                "--tally",
                str(path),
                "no 'index' column in the first rows: give the sheet error analysis "
                "wrote (its header row starts index,true,predicted,...)",
            )
        )
    header = table[start]
    index_col = [_column_key(c) for c in header].index("index")
    rows, ignored = [], 0
    for row in table[start + 1 :]:
        if not any(cell.strip() for cell in row):
            continue  # blank row
        cell = row[index_col].strip() if index_col < len(row) else ""
        try:
            ok = float(cell).is_integer()
        except ValueError:
            ok = False
        if ok:
            rows.append(row)
        else:
            ignored += 1  # a footer such as "% of total", or a note
    return header, rows, ignored


def print_error_analysis(analysis: dict, console) -> None:
    """The dev error, the confusion matrix (up to 12 classes), the most confused pairs and the
    per-class errors, as rich tables."""
    console.print(
        f"[bold]Dev error[/bold] {analysis['dev_error']:.2%} ({analysis['n_misclassified']} of "
        f"{analysis['n_dev']} dev examples misclassified)",
        highlight=False,
    )
    matrix = analysis["confusion_matrix"]
    names = analysis.get("class_names")

    def label(c: int) -> str:  # the class's name where the data had names (a CSV's species), else its index
        return escape(str(names[c])) if names and c < len(names) else str(c)

    if len(matrix) <= 12:
        table = Table(title="Confusion matrix (dev; rows: true class, columns: predicted)", title_justify="left")
        table.add_column("true \\ predicted")
        for c in range(len(matrix)):
            table.add_column(label(c), justify="right")
        for t, row in enumerate(matrix):
            table.add_row(
                label(t),
                *(f"[dim]{v}[/dim]" if t == p or not v else f"[bold red]{v}[/bold red]" for p, v in enumerate(row)),
            )
        console.print(table)
    if analysis["confused_pairs"]:
        table = Table(title="Most confused pairs", title_justify="left")
        for name in ("true", "predicted", "count", "share of errors"):
            table.add_column(name, justify="right")
        for pair in analysis["confused_pairs"]:
            table.add_row(
                label(pair["true"]), label(pair["predicted"]), str(pair["count"]), f"{pair['share_of_errors']:.0%}"
            )
        console.print(table)
    table = Table(title="Error per class (dev)", title_justify="left")
    for name in ("class", "examples", "errors", "error", "share of errors"):
        table.add_column(name, justify="right")
    for row in analysis["per_class"]:
        table.add_row(
            label(row["class"]),
            str(row["n"]),
            str(row["errors"]),
            "-" if row["error"] is None else f"{row['error']:.2%}",
            f"{row['share_of_errors']:.0%}",
        )
    console.print(table)
    if analysis.get("task") == "binary":
        show = lambda v: "-" if v is None else f"{v:.2%}"  # noqa: E731
        console.print(
            f"False positives {analysis['false_positives']}, false negatives {analysis['false_negatives']}; "
            f"precision {show(analysis['precision'])}, recall {show(analysis['recall'])}, F1 {show(analysis['f1'])}",
            highlight=False,
        )
    for note in analysis.get("notes", []):
        console.print(f"  [dim]note: {escape(note)}[/dim]", highlight=False)


def print_tally(result: dict, console) -> None:
    """The sheet's tally: per category the count, share and the dev error if it were fixed; then
    the overall / incorrect-label / other-causes split and the verdict on fixing labels."""
    table = Table(
        title=f"Error analysis: {result['n_examined']} examined dev errors (dev error {result['dev_error']:.2%})",
        title_justify="left",
    )
    table.add_column("category")
    for name in ("count", "share", "dev error if fixed"):
        table.add_column(name, justify="right")
    for row in result["categories"]:
        table.add_row(
            escape(row["category"]), str(row["count"]), f"{row['share']:.0%}", f"{row['dev_error_if_fixed']:.2%}"
        )
    console.print(table)
    labels = result["labels"]
    split = Table(show_header=False, box=None)
    split.add_column()
    split.add_column(justify="right")
    split.add_row("overall dev error", f"{result['dev_error']:.2%}")
    split.add_row("errors due to incorrect labels", f"{labels['error_due_to_labels']:.2%}")
    split.add_row("errors due to other causes", f"{labels['error_due_to_other_causes']:.2%}")
    console.print(split)
    console.print(f"[bold]{escape(labels['verdict'])}[/bold]", highlight=False)
    if labels["count"]:
        for reminder in labels["reminders"]:
            console.print(f"  - {reminder}", highlight=False)
    for note in result["notes"]:
        console.print(f"  [dim]note: {escape(note)}[/dim]", highlight=False)
