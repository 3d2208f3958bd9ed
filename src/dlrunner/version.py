"""dlrunner's version, in a module of its own so that the packages below the public API can read it."""

__version__ = "0.7.4"
