"""dlrunner's stacked launcher: a sweep's trials of one architecture trained at once.
Select with hydra/launcher=stacked."""
