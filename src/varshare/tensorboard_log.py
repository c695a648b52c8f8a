"""A run's scalars as TensorBoard event files (``<run dir>/tensorboard/``), for watching it train.

Every row of ``metrics.csv`` becomes the scalar ``<task>/<metric>`` at step = env steps per task
(``all/eval_return_mean``, ``cartpole-default/eval_return``, ``all/pg_loss``,
``moon/mu_abs_mean/layer0`` ...), with the same values (stored as float32 by TensorBoard); the
wall-clock rates that ``metrics.csv`` leaves out (they differ between reruns) are added as
``all/<rate>`` (e.g. ``all/sps``). A resumed run discards the events after its checkpoint's step
(``purge_step``; everything at that step was written before the checkpoint) and writes them
again, so an interrupted run shows each point once.
``tensorboard --logdir data/runs`` watches every run of a study.
"""

from __future__ import annotations

from pathlib import Path

from varshare.run_io import MetricsTable


class TensorBoardLog:
    """Writes the rows a :class:`MetricsTable` gains as scalars (``sync``), plus rates (``rates``)."""

    def __init__(self, directory: Path, metrics: MetricsTable, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(directory), purge_step=None if resume_step is None else resume_step + 1)
        self.metrics = metrics
        # the rows up to the resume step were written by the session that saved the checkpoint
        rows = metrics.rows
        self.written = len(rows) if resume_step is None else next(
            (i for i, row in enumerate(rows) if row[5] > resume_step), len(rows))

    def sync(self) -> None:
        """Write the metrics rows added since the last call."""
        for _, _, _, _, task, step, metric, value in self.metrics.rows[self.written:]:
            self.writer.add_scalar(f"{task}/{metric}", value, step)
        self.written = len(self.metrics.rows)
        self.writer.flush()

    def rates(self, step: int, values: dict[str, float]) -> None:
        """Wall-clock rates (not in metrics.csv) as ``all/<name>``."""
        for name, value in values.items():
            self.writer.add_scalar(f"all/{name}", value, step)

    def close(self) -> None:
        self.writer.close()
