"""The sweeper's settings (``hydra.sweeper.*``) as a structured config; the plugin registers it as
hydra/sweeper=dlrunner. Here, below the CLI and the plugin, so that both read the same declaration.
typing's Optional/Dict/List: OmegaConf 2.3 does not read ``X | None`` annotations."""

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class PruningConf:
    # the first rung, in training steps; None: 1/reduction_factor**2 of the trial's steps, rounded up
    # to a whole number of evaluations
    min_steps: Optional[int] = None
    reduction_factor: int = 3  # rungs at min_steps * eta**k; each keeps the best 1/eta of the trials there


@dataclass
class DlrunnerSweeperConf:
    _target_: str = "hydra_plugins.dlrunner_sweeper.sweeper.DlrunnerSweeper"
    # key -> distribution in Hydra's override grammar, e.g.
    #   optimizer.lr: tag(log, interval(1e-4, 1))             log-uniform
    #   optimizer.beta1: tag(one_minus_log, interval(0.9, 0.999))  1 - beta log-uniform
    #   optimizer.batch_size: tag(pow2, int(interval(32, 512)))    powers of two
    #   model.layers: choice([64,64],[128,128])                  categorical
    params: Dict[str, str] = field(default_factory=dict)
    method: str = "coarse_to_fine"  # coarse_to_fine | random | grid
    budget: int = 20  # trials in all
    rounds: Optional[int] = None  # coarse-to-fine rounds; None: from the budget (2 for 12 trials, 4 for 50, 7 for 500)
    top_k: int = 3  # best eligible trials that define the next round's region
    margin: float = 0.25  # widen the region by this share of the top trials' spread
    grid_points: int = 3  # per numeric parameter, for method=grid
    # the trial's objective: what its task returns, if a number; else this dotted path in the mapping
    # it returns (dlrun's task returns its summary.json)
    objective: str = "metrics.dev.error"
    direction: str = "minimize"  # minimize | maximize
    constraints: List[str] = field(default_factory=list)  # satisficing, paths in that mapping: "n_params <= 50000"
    max_failure_rate: float = 0.5  # stop the sweep when a larger share of trials failed
    # trials per launch (then sweep() returns one list per launch); None = the launcher's parallelism
    max_batch_size: Optional[int] = None
    seed: int = 0
    # stop bad trials early: none | halving (asynchronous successive halving on the dev error, docs/sweeps.md)
    pruner: str = "none"
    pruning: PruningConf = field(default_factory=PruningConf)
    export_wandb: Optional[str] = None  # write the space as a W&B sweep YAML to this file and stop
