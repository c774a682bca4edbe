"""The training loop and what it writes: the trainer, checkpoints (single-file and sharded), the run
directory, optimizers, schedules, FLOP counting, loggers and interrupt signals.

May import recipe/ and runtime/; nothing in recipe/, runtime/ or a component family imports training/."""
