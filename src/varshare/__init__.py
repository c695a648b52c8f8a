"""varshare: a reproducible multi-task RL study of variational residual weight sharing."""

__version__ = "0.1.0"
