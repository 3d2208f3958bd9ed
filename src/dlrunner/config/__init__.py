"""Config schemas (structured configs), search paths and semantic validation."""
