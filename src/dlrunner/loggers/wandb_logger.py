"""Weights & Biases: offline by default, files in the run folder (``wandb sync`` uploads them).

wandb is an optional extra (``pip install 'dlrunner[wandb]'``) and is imported only here, only
when ``logger=wandb`` is chosen. Any failure (not installed, init timeout, no disk) is a warning:
training goes on and the run folder is complete without it.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from dlrunner.loggers import NoLogger, flatten

# A sweep trial's place, set by dlrun's sweeper through the job's hydra.job.env_set (a trial's config
# is left as the user wrote it): the sweep's name, the trial's number, its round.
SWEEP_ENV = ("DLRUN_SWEEP_NAME", "DLRUN_SWEEP_TRIAL", "DLRUN_SWEEP_ROUND")


def sweep_place(settings, run_dir: Path) -> dict | None:
    """{"name", "trial", "round"} of a sweep trial, or None outside a sweep. Read from the trial's
    own saved Hydra config (.hydra/hydra.yaml: stacked trials train in one process, where the
    environment holds one trial's values), else from the environment; the logger's own
    sweep_trial/sweep_round keys (set by hand) are still read."""
    found = {key: os.environ.get(key) for key in SWEEP_ENV}
    saved = run_dir / ".hydra" / "hydra.yaml"
    if saved.is_file():
        env_set = OmegaConf.select(OmegaConf.load(saved), "hydra.job.env_set") or {}
        found.update({key: str(env_set[key]) for key in SWEEP_ENV if key in env_set})
    name, trial, round_ = (found[key] for key in SWEEP_ENV)
    if trial is None and settings.get("sweep_trial") is not None:
        trial, round_ = settings.sweep_trial, settings.sweep_round
    if trial is None:
        return None
    return {"name": name, "trial": int(trial), "round": int(round_) if round_ is not None else None}


class WandbLogger(NoLogger):
    def __init__(self, cfg, run_dir: Path, console):
        self.console = console
        self.run = None
        self.wandb = None
        settings = cfg.logger
        try:
            import wandb
        except ImportError as err:
            from dlrunner.config.messages import install_command

            self._warn(
                f"logger=wandb but wandb cannot be imported ({err}); {install_command('wandb')}. "
                "Training goes on; the run folder has everything."
            )
            return
        config = OmegaConf.to_container(cfg, resolve=True)
        place = sweep_place(settings, run_dir)
        name, group = settings.name or run_dir.name, settings.group
        if place:
            config["sweep"] = place
            # Told apart across sweeps: "<sweep>-trial-<n>" in a group named after the sweep, whose
            # name is its folder (a date and time by default), not a bare "0", "1", ...
            if place["name"]:
                name = settings.name or f"{place['name']}-trial-{place['trial']}"
                group = group or place["name"]
        self.data_dir = run_dir / "wandb" / "data"
        try:
            self.run = wandb.init(
                project=settings.project,
                entity=settings.entity,
                name=name,
                group=group,
                job_type=settings.job_type,
                tags=list(settings.tags),
                notes=settings.notes,
                mode=os.environ.get("WANDB_MODE") or settings.mode,
                dir=str(run_dir),
                config=config,
                settings=wandb.Settings(init_timeout=60, silent=True),
            )
            self.wandb = wandb  # an offline run says where it is, and how to upload it, when it closes
        except Exception as err:  # wandb raises many kinds; none may stop the training
            self._warn(f"W&B could not start a run ({type(err).__name__}: {err}); training goes on without it.")

    def _warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning: {message}[/yellow]", highlight=False)

    def _guard(self, action, what: str) -> None:
        if self.run is None:
            return
        # W&B stages the files of tables and artifacts under ~/.local/share/wandb until `wandb sync`
        # reads them: stage them in this run's folder instead, with everything else of the run (a
        # user's own WANDB_DATA_DIR wins). Set around each call: stacked trials log from one process.
        # The offline run names them by absolute path: the folder syncs from that path.
        own = "WANDB_DATA_DIR" not in os.environ
        if own:
            os.environ["WANDB_DATA_DIR"] = str(self.data_dir)
        try:
            action()
        except Exception as err:
            self._warn(f"W&B failed to {what} ({type(err).__name__}: {err}); it is off for the rest of this run.")
            self.close("failed")
        finally:
            if own:
                os.environ.pop("WANDB_DATA_DIR", None)

    def log_metrics(self, record: dict) -> None:
        self._guard(
            lambda: self.run.log(flatten({k: v for k, v in record.items() if k != "step"}), step=record["step"]),
            "log metrics",
        )

    def log_summary(self, summary: dict, analysis: dict | None) -> None:
        def write():
            self.run.summary.update(flatten({k: v for k, v in summary.items() if k != "config"}))
            if analysis:
                wandb = self.wandb
                n_classes = len(analysis["confusion_matrix"])
                table = wandb.Table(columns=["index", "true", "predicted", "confidence", "input"])
                from dlrunner.diagnostics.error_analysis import input_picture

                for row in analysis["misclassified"]:
                    picture = input_picture(row["input"])
                    shown = (
                        wandb.Image(__import__("numpy").asarray(picture, dtype="float32"))
                        if picture
                        else str(row["input"])
                    )
                    table.add_data(row["index"], row["true"], row["predicted"], row["confidence"], shown)
                matrix = wandb.plot.confusion_matrix(
                    y_true=analysis["y_true"], preds=analysis["y_pred"], class_names=[str(c) for c in range(n_classes)]
                )
                # At the last training step, beside that step's metrics.
                self.run.log(
                    {"dev/confusion_matrix": matrix, "dev/misclassified": table}, step=summary["timing"]["steps"]
                )

        self._guard(write, "log the summary")

    def log_checkpoint(self, path: Path) -> None:
        def write():
            artifact = self.wandb.Artifact(f"{self.run.id}-best", type="model")
            artifact.add_file(str(path))
            self.run.log_artifact(artifact)

        self._guard(write, "log the checkpoint")

    def close(self, status: str) -> None:
        run, self.run = self.run, None
        if run is not None:
            offline = Path(run.dir).parent if getattr(run.settings, "mode", "") == "offline" else None
            try:
                run.finish(exit_code=0 if status in ("completed", "diverged", "pruned") else 1)
            except Exception as err:
                self._warn(f"W&B failed to finish the run ({type(err).__name__}: {err})")
                return
            if offline is not None:
                self.console.print(
                    f"W&B offline run (nothing uploaded): {offline}\n  upload it with: wandb sync {offline}",
                    highlight=False,
                    soft_wrap=True,
                )


def log_to_existing_run(run_dir: Path, key: str, result) -> None:
    """Add a later result (an error-analysis sheet, a tally) to the W&B run a training run made.

    Does nothing when the run did not log to W&B. The run is resumed by its id in offline mode,
    which writes a second offline folder with the same id; `wandb sync` merges them. Failures
    are warnings: the files in the run folder are the result.
    """
    runs = sorted((run_dir / "wandb").glob("*run-*-*")) if (run_dir / "wandb").is_dir() else []
    if not runs:
        return
    run_id = runs[0].name.rsplit("-", 1)[-1]
    try:
        import csv

        import wandb

        from dlrunner.loggers import flatten

        settings = wandb.Settings(init_timeout=60, silent=True)
        run = wandb.init(
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            mode=os.environ.get("WANDB_MODE") or "offline",
            settings=settings,
        )
        if isinstance(result, Path):  # a CSV sheet: a W&B Table
            with open(result, newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
            run.log({key: wandb.Table(columns=rows[0], data=rows[1:])})
        else:
            run.summary.update(flatten({key: result}))
        run.finish()
    except Exception as err:
        from rich.console import Console

        Console(stderr=True).print(f"[yellow]warning: W&B could not log {key} ({type(err).__name__}: {err})[/yellow]")


def log_diagnostic(cfg, out_dir: Path, job_type: str, result: dict, image: Path | None = None) -> None:
    """A W&B run of its own for a diagnostic command (`dlrun check`, `dlrun gradcheck`): the
    config, and the result in the run's summary. Failures are warnings."""
    try:
        import wandb

        from dlrunner.loggers import flatten

        settings = cfg.logger
        run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            group=settings.group,
            job_type=job_type,
            name=f"{job_type}-{out_dir.name}",
            tags=list(settings.tags),
            dir=str(out_dir),
            mode=os.environ.get("WANDB_MODE") or settings.mode,
            config=OmegaConf.to_container(cfg, resolve=True),
            settings=wandb.Settings(init_timeout=60, silent=True),
        )
        run.summary.update(flatten({job_type: result}))
        if image is not None:
            run.log({f"{job_type}/plot": wandb.Image(str(image))})
        run.finish()
    except Exception as err:
        from rich.console import Console

        Console(stderr=True).print(
            f"[yellow]warning: W&B could not log the {job_type} ({type(err).__name__}: {err})[/yellow]"
        )
