"""Error analysis on a finished run (SPEC E13, E14): the dev set's mistakes, the sheet a person
marks, and its tally with the course's ceilings and the rule on incorrect labels."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from dlrunner.diagnostics.analyze import (
    DEFAULT_CATEGORIES,
    LABEL_COLUMN,
    error_analysis,
    print_error_analysis,
    print_tally,
    tally,
    write_sheet,
)
from dlrunner.errors import ConfigError
from helpers import read_summary, train_in_process

PNG = b"\x89PNG\r\n\x1a\n"


def course_sheet(path: Path, n: int, marks: dict[str, int], delimiter: str = ",", bom: bool = False) -> Path:
    """A sheet of ``n`` examined errors where the first ``marks[column]`` rows are ticked."""
    columns = ["index", "true", "predicted", "confidence", "input", *marks, "comments"]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    for i in range(n):
        writer.writerow([i, 1, 0, 0.9, ""] + ["x" if i < count else "" for count in marks.values()] + [""])
    path.write_text(("\ufeff" if bom else "") + out.getvalue(), encoding="utf-8")
    return path


# --- the course's numbers (SPEC J, E13, E14) ---------------------------------------------------


def test_ceiling_five_percent_dogs_of_ten_percent_error_is_9_5_percent(tmp_path):
    result = tally(course_sheet(tmp_path / "s.csv", 100, {"dog": 5, "great_cat": 43, "blurry": 61}), dev_error=0.10)
    by_name = {row["category"]: row for row in result["categories"]}
    assert by_name["dog"]["count"] == 5 and by_name["dog"]["share"] == pytest.approx(0.05)
    assert by_name["dog"]["dev_error_if_fixed"] == pytest.approx(0.095)  # 10% -> 9.5% at best
    assert by_name["great_cat"]["dev_error_if_fixed"] == pytest.approx(0.057)
    assert by_name["blurry"]["share"] == pytest.approx(0.61)
    # 50 dogs of 100 mistakes: fixing dogs could halve the error, 10% -> 5%
    half = tally(course_sheet(tmp_path / "half.csv", 100, {"dog": 50}), dev_error=0.10)
    assert half["categories"][0]["dev_error_if_fixed"] == pytest.approx(0.05)


@pytest.mark.parametrize(
    "dev_error, mislabelled, due_to_labels, other_causes, worth_fixing",
    [
        (0.10, 6, 0.006, 0.094, False),  # 10% overall, 0.6% labels, 9.4% other: not the first thing
        (0.02, 30, 0.006, 0.014, True),
    ],  # 2% overall, 0.6% labels, 1.4% other: worth fixing
)
def test_course_examples_of_incorrect_labels(
    tmp_path, dev_error, mislabelled, due_to_labels, other_causes, worth_fixing
):
    result = tally(course_sheet(tmp_path / "s.csv", 100, {"dog": 8, LABEL_COLUMN: mislabelled}), dev_error)
    labels = result["labels"]
    assert labels["count"] == mislabelled
    assert labels["error_due_to_labels"] == pytest.approx(due_to_labels)
    assert labels["error_due_to_other_causes"] == pytest.approx(other_causes)
    assert labels["worth_fixing"] is worth_fixing
    assert ("Worth fixing" if worth_fixing else "Not the first thing") in labels["verdict"]
    assert any("dev and the test set together" in r for r in labels["reminders"])
    assert any("got right" in r for r in labels["reminders"])
    assert result["categories"][-1]["category"] == LABEL_COLUMN  # labels get a ceiling row too


# --- a real run --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    train_in_process(root, "data=digits", "trainer=quick")
    return root / "run"


@pytest.fixture
def digits(digits_run, tmp_path):
    """A private copy of the digits run, so sheets written by one test do not meet another's."""
    return Path(shutil.copytree(digits_run, tmp_path / "digits_run"))


def test_per_class_errors_add_up_to_the_dev_error(digits):
    analysis = error_analysis(digits)
    summary, raw = read_summary(digits), json.loads((digits / "analysis.json").read_text())
    matrix = analysis["confusion_matrix"]
    assert matrix == raw["confusion_matrix"] and len(matrix) == 10
    assert analysis["n_dev"] == summary["sizes"]["dev"] == sum(map(sum, matrix))
    assert analysis["n_misclassified"] == raw["n_misclassified"] >= 3
    assert sum(row["errors"] for row in analysis["per_class"]) == analysis["n_misclassified"]
    assert analysis["dev_error"] == pytest.approx(analysis["n_misclassified"] / analysis["n_dev"])
    assert analysis["dev_error"] == pytest.approx(summary["metrics"]["dev"]["error"])
    for row in analysis["per_class"]:
        assert row["n"] == sum(matrix[row["class"]])
        assert row["errors"] == row["n"] - matrix[row["class"]][row["class"]]
        assert row["error"] == pytest.approx(row["errors"] / row["n"])
    weighted = sum(row["error"] * row["n"] for row in analysis["per_class"]) / analysis["n_dev"]
    assert weighted == pytest.approx(analysis["dev_error"])
    pairs = analysis["confused_pairs"]
    assert [p["count"] for p in pairs] == sorted((p["count"] for p in pairs), reverse=True)
    assert all(matrix[p["true"]][p["predicted"]] == p["count"] and p["true"] != p["predicted"] for p in pairs)
    assert sum(p["share_of_errors"] for p in pairs) == pytest.approx(1.0)  # fewer than 10 distinct confusions here
    assert "false_positives" not in analysis
    out = io.StringIO()
    print_error_analysis(analysis, Console(file=out, width=120))
    assert "Confusion matrix" in out.getvalue() and "Error per class" in out.getvalue()


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_sheet_most_confident_first_with_empty_columns_and_pictures(digits):
    analysis = error_analysis(digits)
    out = io.StringIO()
    sheet = write_sheet(digits, analysis, limit=3, console=Console(file=out, width=200))
    assert sheet == digits / "error_analysis" / "sheet.csv"
    assert not list(sheet.parent.glob(".*tmp"))  # written atomically, nothing left behind
    rows = read_rows(sheet)
    assert len(rows) == 3
    assert list(rows[0]) == [
        "index",
        "true",
        "predicted",
        "confidence",
        "input",
        *DEFAULT_CATEGORIES,
        LABEL_COLUMN,
        "comments",
    ]
    confidences = [float(r["confidence"]) for r in rows]
    assert confidences == sorted(confidences, reverse=True)
    assert [int(r["index"]) for r in rows] == [r["index"] for r in analysis["misclassified"][:3]]
    for row in rows:
        assert row["true"] != row["predicted"]
        assert all(row[c] == "" for c in (*DEFAULT_CATEGORIES, LABEL_COLUMN, "comments"))
        assert row["input"] == f"inputs/{row['index']}.png"
        assert (sheet.parent / row["input"]).read_bytes()[:8] == PNG  # 8x8 digits drawn as images
    assert f"3 most confident of the {analysis['n_misclassified']}" in out.getvalue()
    assert len(read_rows(write_sheet(digits, analysis))) == analysis["n_misclassified"]  # default: all of them (<= 100)


def test_filled_sheet_tallies_and_is_never_overwritten(digits):
    analysis = error_analysis(digits)
    sheet = write_sheet(digits, analysis, categories=["thick_strokes", "looks_like_predicted_class"])
    rows = read_rows(sheet)
    n = len(rows)
    rows[0]["thick_strokes"] = "x"
    rows[1]["thick_strokes"] = "1"
    rows[1]["looks_like_predicted_class"] = "yes"
    rows[2][LABEL_COLUMN] = "x"
    rows[2]["comments"] = "a 1 written like a 7"
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    filled = sheet.read_bytes()

    result = tally(sheet, analysis["dev_error"])
    by_name = {row["category"]: row for row in result["categories"]}
    assert result["n_examined"] == n
    assert by_name["thick_strokes"]["count"] == 2 and by_name["thick_strokes"]["share"] == pytest.approx(2 / n)
    assert by_name["thick_strokes"]["dev_error_if_fixed"] == pytest.approx(analysis["dev_error"] * (1 - 2 / n))
    assert by_name["looks_like_predicted_class"]["count"] == 1
    assert result["labels"]["count"] == 1
    assert result["unmarked"] == n - 3
    out = io.StringIO()
    print_tally(result, Console(file=out, width=200))
    assert "dev error if fixed" in out.getvalue() and result["labels"]["verdict"][:20] in out.getvalue()

    out = io.StringIO()
    second = write_sheet(digits, analysis, console=Console(file=out, width=200))
    assert second.name == "sheet-2.csv" and "left alone" in out.getvalue()
    assert sheet.read_bytes() == filled  # the user's marks are untouched
    assert write_sheet(digits, analysis) == second  # an unmarked sheet-2 may be rewritten
    fresh = digits.parent / "fresh"
    shutil.copytree(digits, fresh, ignore=shutil.ignore_patterns("error_analysis"))
    assert write_sheet(fresh, analysis).name == write_sheet(fresh, analysis).name == "sheet.csv"  # unmarked: rewritten


def test_tally_reads_a_libreoffice_resave(digits):
    """BOM, ';' delimiter, CRLF, a column added while marking, blank rows and a footer row."""
    analysis = error_analysis(digits)
    rows = read_rows(write_sheet(digits, analysis, categories=["blurry"]))
    lines = [
        ";".join(
            [
                "index",
                "true",
                "predicted",
                "confidence",
                "input",
                "blurry",
                "Instagram",
                "Incorrectly labelled",
                "Comments",
                "",
            ]
        )
    ]
    for i, row in enumerate(rows):
        blurry = {0: "x", 1: "X", 2: "0"}.get(i, "")  # "0" is not a mark
        instagram = "1" if i in (1, 3) else ""
        lines.append(
            ";".join(
                [
                    row["index"],
                    row["true"],
                    row["predicted"],
                    row["confidence"].replace(".", ","),
                    row["input"],
                    blurry,
                    instagram,
                    "yes" if i == 4 else "",
                    "",
                    "",
                ]
            )
        )
        lines.append(";;;;;;;;;")  # blank row
    lines.append("% of total;;;;;29%;25%;13%;;")
    sheet = digits / "error_analysis" / "resaved.csv"
    sheet.write_bytes("\ufeff".encode() + "\r\n".join(lines).encode("utf-8") + b"\r\n")

    result = tally(sheet, 0.05)
    by_name = {row["category"]: row for row in result["categories"]}
    n = len(rows)
    assert result["n_examined"] == n and result["ignored_rows"] == 1
    assert by_name["blurry"]["count"] == 2
    assert by_name["Instagram"]["count"] == 2
    assert by_name["Instagram"]["dev_error_if_fixed"] == pytest.approx(0.05 * (1 - 2 / n))
    assert result["labels"]["count"] == 1
    assert set(by_name) == {"blurry", "Instagram", "Incorrectly labelled"}


def test_tally_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        tally(tmp_path / "missing.csv", 0.1)
    assert err.value.problems[0].key == "--tally" and "no such file" in str(err.value)
    (tmp_path / "other.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ConfigError) as err:
        tally(tmp_path / "other.csv", 0.1)
    assert err.value.problems[0].key == "--tally" and "index" in str(err.value)


def test_binary_run_has_false_positives_and_negatives(tmp_path):
    train_in_process(tmp_path, "data=breast_cancer", "trainer=quick")
    run = tmp_path / "run"
    analysis = error_analysis(run)
    summary = read_summary(run)
    (_tn, fp), (fn, tp) = analysis["confusion_matrix"]
    assert (analysis["false_positives"], analysis["false_negatives"], analysis["true_positives"]) == (fp, fn, tp)
    assert analysis["n_misclassified"] == fp + fn
    assert analysis["precision"] == pytest.approx(summary["metrics"]["dev"]["precision"])
    assert analysis["recall"] == pytest.approx(summary["metrics"]["dev"]["recall"])
    out = io.StringIO()
    print_error_analysis(analysis, Console(file=out, width=120))
    assert f"False positives {fp}, false negatives {fn}" in out.getvalue()
    if analysis["misclassified"]:  # 30 features: drawn as a line
        row = read_rows(write_sheet(run, analysis))[0]
        assert (run / "error_analysis" / row["input"]).read_bytes()[:8] == PNG


def test_regression_run_and_non_run_folders_are_refused(tmp_path):
    train_in_process(tmp_path, "data=moons", "data.task=regression", "trainer=quick")
    with pytest.raises(ConfigError) as err:
        error_analysis(tmp_path / "run")
    assert err.value.problems[0].key == "RUN"
    assert "single-label classification" in str(err.value) and "regression" in str(err.value)

    (tmp_path / "empty").mkdir()
    for folder, says in [(tmp_path / "empty", "not a run folder"), (tmp_path / "nowhere", "no such folder")]:
        with pytest.raises(ConfigError) as err:
            error_analysis(folder)
        assert err.value.problems[0].key == "RUN" and says in str(err.value)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text(json.dumps({"status": "completed", "task": "multiclass"}))
    (broken / "analysis.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        error_analysis(broken)


def test_many_pictures_are_quick_and_can_be_capped(tmp_path):
    rows = [
        {
            "index": i,
            "true": 0,
            "predicted": 1,
            "confidence": 1 - i / 1000,
            "input": [float((i * j) % 17) for j in range(64 if i % 2 else 30)],
        }
        for i in range(100)
    ]
    analysis = {"misclassified": rows, "n_misclassified": 100}
    start = time.perf_counter()
    sheet = write_sheet(tmp_path, analysis)
    elapsed = time.perf_counter() - start
    assert len(list((sheet.parent / "inputs").glob("*.png"))) == 100
    assert elapsed < 10, f"100 pictures took {elapsed:.1f} s"

    out = io.StringIO()
    capped = write_sheet(tmp_path / "capped", analysis, pictures=10, console=Console(file=out, width=200))
    inputs = [row["input"] for row in read_rows(capped)]
    assert all(text.endswith(".png") for text in inputs[:10])
    assert inputs[10].endswith("(30 values)") and inputs[11].endswith("(64 values)")
    assert "first 10 rows only" in out.getvalue()

    with pytest.raises(ConfigError) as err:
        write_sheet(tmp_path, analysis, categories=["blurry", "comments"])
    assert err.value.problems[0].key == "--categories"
