"""Diagnostics: the bias/variance verdict and the metrics that feed it."""

from dlrunner.diagnostics.bias_variance import diagnose

__all__ = ["diagnose"]
