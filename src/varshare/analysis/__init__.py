"""Results of finished runs: tables, statistics and figures.

* :mod:`~varshare.analysis.aggregate` — load run directories' ``metrics.csv`` and derive learning
  curves, final per-task returns and the per-task table;
* :mod:`~varshare.analysis.stats` — IQM with 95% stratified-bootstrap confidence intervals (rliable);
* :mod:`~varshare.analysis.figures` — learning-curve and IQM figures (PNG and PDF, written atomically);
* :mod:`~varshare.analysis.style` — algorithm and method order, the fixed method → colour mapping and
  the per-algorithm line dashes.

Every table is keyed by ``algo`` as well as ``method`` and ``seed``.

Importing this package is cheap; pandas, matplotlib and rliable load with the submodules.
"""
