"""dlrunner's Hydra sweeper: log-scale random search, coarse to fine. Select with hydra/sweeper=dlrunner."""
