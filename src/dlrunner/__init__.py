"""dlrunner: configuration-driven deep learning experiments with a bias/variance verdict."""

__version__ = "0.2.0"
