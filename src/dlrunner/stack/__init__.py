"""Caviar on one device (SPEC D5): many trials of one architecture trained at once in one process.

``hydra/launcher=stacked`` groups a sweep's trials by ``group.stack_key`` and trains each group
with ``train.train_stacked``; trials that cannot be stacked train alone, as with the basic launcher.
"""
