"""dlrunner's Hydra sweeper: log-scale random search, coarse to fine, for any Hydra app (docs/hydra.md).
Select with hydra/sweeper=dlrunner."""
