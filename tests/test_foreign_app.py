"""dlrunner's Hydra plugins in a plain ``@hydra.main`` app that knows nothing of dlrun, run as a user
runs it: a real subprocess through ``hydra.test_utils.test_utils.run_python_script`` (``python
-Werror``, as hydra-optuna-sweeper's example tests run their examples)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from hydra.test_utils.test_utils import run_python_script

APP = """
import hydra

@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    print(f"x={cfg.x} db={cfg.db.driver} user={cfg.db.user}")
    if cfg.x < 0:
        raise ValueError("x must be >= 0")
    loss = (cfg.x - 0.3) ** 2 + (0.1 if cfg.db.driver == "mysql" else 0.0)
    return {"loss": loss, "size": cfg.db.timeout} if cfg.get("as_mapping") else loss

if __name__ == "__main__":
    main()
"""


def make_app(tmp_path: Path) -> Path:
    (tmp_path / "conf" / "db").mkdir(parents=True)
    (tmp_path / "conf" / "config.yaml").write_text("defaults:\n  - db: mysql\n  - _self_\nx: 0.5\nas_mapping: false\n")
    (tmp_path / "conf" / "db" / "mysql.yaml").write_text("driver: mysql\nuser: root\ntimeout: 5\n")
    (tmp_path / "conf" / "db" / "postgresql.yaml").write_text("driver: postgresql\nuser: pg\ntimeout: 10\n")
    (tmp_path / "app.py").write_text(APP)
    return tmp_path / "app.py"


def run_app(app: Path, *overrides: str, env: dict | None = None, raise_exception: bool = True):
    import os

    environment = {**os.environ, **(env or {})}
    return run_python_script([str(app), *overrides], env=environment, raise_exception=raise_exception)


def ledger(sweep_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep_dir / "trials.jsonl").read_text().splitlines()]


def test_a_plain_app_sweeps_on_its_return_value_and_loads_its_best_yaml(tmp_path):
    app = make_app(tmp_path)
    sweep = tmp_path / "s"
    args = ("-m", "hydra/sweeper=dlrunner", "x=interval(0, 1)", "db=mysql,postgresql", f"hydra.sweep.dir={sweep}")
    out, _ = run_app(app, *args, "hydra.sweeper.budget=6", "hydra.sweeper.rounds=2")
    records = ledger(sweep)
    assert [r["number"] for r in records] == list(range(6))
    for record in records:  # the objective is what the task returned
        expected = (record["params"]["x"] - 0.3) ** 2 + (0.1 if record["params"]["db"] == "mysql" else 0)
        assert record["status"] == "completed" and abs(record["objective"] - expected) < 1e-12
        # nothing added to the app's config or to the job's overrides
        saved = yaml.safe_load((sweep / str(record["number"]) / ".hydra" / "config.yaml").read_text())
        assert set(saved) == {"db", "x", "as_mapping"}
        overrides = yaml.safe_load((sweep / str(record["number"]) / ".hydra" / "overrides.yaml").read_text())
        assert overrides == [f"x={record['params']['x']!r}", f"db={record['params']['db']}"]
    best = min(records, key=lambda r: r["objective"])
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results == {"name": "dlrunner", "best_params": best["params"], "best_value": best["objective"]}
    assert f"train it again: python {app} --config-path {sweep} --config-name best" in out
    # best.yaml is a config the app itself loads; its group choice can still be changed on top of it.
    again, _ = run_app(app, "--config-path", str(sweep), "--config-name", "best", f"hydra.run.dir={tmp_path / 'r'}")
    user = "pg" if best["params"]["db"] == "postgresql" else "root"
    assert again == f"x={best['params']['x']} db={best['params']['db']} user={user}"
    other = "mysql" if best["params"]["db"] == "postgresql" else "postgresql"
    switched, _ = run_app(
        app, "--config-path", str(sweep), "--config-name", "best", f"db={other}", f"hydra.run.dir={tmp_path / 'r2'}"
    )
    assert switched.startswith(f"x={best['params']['x']} db={other}")
    # Resume: the same command runs nothing again.
    resumed, _ = run_app(app, *args, "hydra.sweeper.budget=6", "hydra.sweeper.rounds=2")
    assert "6 trials already done" in resumed and "x=" not in resumed.replace("x=interval", "")


def test_a_mapping_objective_constraints_and_failed_trials(tmp_path):
    app = make_app(tmp_path)
    sweep = tmp_path / "s"
    run_app(
        app,
        "-m",
        "hydra/sweeper=dlrunner",
        "hydra.sweeper.method=grid",
        "x=-1,0.25,0.5",
        "db=mysql,postgresql",
        "as_mapping=true",
        "hydra.sweeper.objective=loss",
        "hydra.sweeper.constraints=['size <= 5']",
        f"hydra.sweep.dir={sweep}",
    )
    records = {(r["params"]["x"], r["params"]["db"]): r for r in ledger(sweep)}
    assert len(records) == 6
    failed = records[(-1, "mysql")]
    assert failed["status"] == "failed" and "x must be >= 0" in failed["message"] and not failed["eligible"]
    assert records[(0.25, "mysql")]["eligible"] and not records[(0.25, "postgresql")]["eligible"]  # size 10
    assert records[(0.25, "postgresql")]["constraints"] == {"size <= 5": 10}
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"] == {"x": 0.25, "db": "mysql"}


def test_nothing_to_search_is_the_one_job(tmp_path):
    app = make_app(tmp_path)
    out, _ = run_app(app, "-m", "hydra/sweeper=dlrunner", "x=0.7", f"hydra.sweep.dir={tmp_path / 's'}")
    assert "x=0.7 db=mysql" in out and (tmp_path / "s" / "0" / ".hydra").is_dir()


def test_the_stacked_launcher_runs_a_plain_apps_jobs_in_sequence(tmp_path):
    app = make_app(tmp_path)
    out, _ = run_app(app, "-m", "hydra/launcher=stacked", "x=0.1,0.2", f"hydra.sweep.dir={tmp_path / 's'}")
    assert out.count("note: hydra/launcher=stacked stacks only dlrun's own experiments") == 1
    assert "x=0.1 db=mysql" in out and "x=0.2 db=mysql" in out


def test_dlrun_config_dir_does_not_reach_another_app(tmp_path):
    app = make_app(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text("x: 999\n")
    (tmp_path / "mine" / "db").mkdir()
    (tmp_path / "mine" / "db" / "mysql.yaml").write_text("driver: mine\nuser: me\ntimeout: 1\n")
    out, _ = run_app(app, f"hydra.run.dir={tmp_path / 'r'}", env={"DLRUN_CONFIG_DIR": str(tmp_path / "mine")})
    assert out == "x=0.5 db=mysql user=root"


def test_a_mapping_without_the_objective_is_one_message_and_exit_2(tmp_path):
    app = make_app(tmp_path)
    args = ("-m", "hydra/sweeper=dlrunner", "x=interval(0, 1)", "as_mapping=true", f"hydra.sweep.dir={tmp_path / 's'}")
    _, err = run_app(app, *args, "hydra.sweeper.budget=2", raise_exception=False)
    assert "hydra/sweeper=dlrunner: " in err and "hydra.sweeper.objective" in err and "'loss'" in err
    assert "Traceback" not in err
