"""The claims report: each claim of the study (SCIENCE.md, "The claims") tested on the aggregated
results of whatever the preset ran, with its statistic, a 95% stratified-bootstrap CI, n and a
verdict by the rule of ``docs/claims.md`` (stated there once; :func:`better_verdict`,
:func:`equivalence_verdict`, :func:`non_inferiority_verdict` and :func:`combine` implement it).

Scores are task-normalised (:mod:`varshare.analysis.efficiency`: 0 random, 1 solved). A *test* is
one statistic of one comparison in one scope (a suite and algorithm, or a suite and method):

* ``better`` tests give rliable's probability of improvement P(X > Y) of the per-run, per-task
  values of X over Y (fewer steps to τ is better) on the final score, the AUC and the steps to τ;
* ``equivalent`` / ``non-inferior`` tests give the difference of interquartile means
  IQM(X) − IQM(Y) on the final score and the AUC, against a margin δ.

Intervals resample runs within each task, independently for X and Y
(:func:`varshare.analysis.stats.comparison_interval`), from the settings' seed. n is
``seeds × tasks`` of X and of Y (leave-one-out: seeds × held-out tasks).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from varshare.analysis.aggregate import EVAL_METRIC
from varshare.analysis.efficiency import normalised_curves, run_statistics
from varshare.analysis.stats import comparison_interval, interquartile_mean, probability_of_improvement, score_matrix
from varshare.analysis.style import ordered_algos, ordered_methods
from varshare.config import CHALLENGERS, COMPARED_METHODS, VARSHARE_VARIANTS
from varshare.hpo.objective import ScoreRange
from varshare.io import atomic_write_text

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
CEILING = "inconclusive: ceiling"
NOT_TESTED = "not tested"

COMPARED, VARIANTS = COMPARED_METHODS, VARSHARE_VARIANTS
#: what claims (a) and (b) are about: the suites of the method comparison (SCIENCE.md)
COMPARISON_SUITES = ("cartpole10", "lunarlander20")
BASELINES = tuple(m for m in COMPARED if m not in CHALLENGERS)
STRATEGIES = {EVAL_METRIC: "mean weights", "eval_return_sample1": "sample-1", "eval_return_sample5": "sample-5"}

#: statistic → (column of :func:`~varshare.analysis.efficiency.run_statistics`, label, lower is better)
STATISTICS = {"final": ("final", "final score", False), "auc": ("auc", "AUC", False),
              "steps": ("steps", "steps to τ", True)}


@dataclass(frozen=True)
class ClaimSettings:
    """The report's parameters (normalised-score units unless stated)."""

    margin: float = 0.05          # δ of the equivalence and non-inferiority tests
    threshold: float = 0.9        # τ of steps to threshold
    ceiling_tolerance: float = 0.01  # an IQM CI whose upper end is ≥ 1 − this touches the ceiling
    reps: int = 2000              # bootstrap replications per interval
    seed: int = 0                 # seeds every interval's resampling


@dataclass(frozen=True)
class SuiteResults:
    """What the report reads of one suite: its score range, ``task_curves.csv``, ``parameters.csv``
    and, when the preset ran leave-one-out, ``loo/loo_runs.csv`` with the threshold of ``loo.json``."""

    suite: str
    scores: ScoreRange
    task_curves: pd.DataFrame
    parameters: pd.DataFrame | None = None
    loo_runs: pd.DataFrame | None = None
    loo_threshold: str | None = None


@dataclass(frozen=True)
class Test:
    """One statistic of one comparison: ``estimate`` with its CI, n, and the verdict."""

    scope: str
    comparison: str
    statistic: str
    kind: str
    estimate: float
    ci_low: float
    ci_high: float
    n: str
    verdict: str


@dataclass
class Claim:
    """A claim, its tests and its verdict; ``note`` says what was not run (or why nothing was)."""

    key: str
    sentence: str
    statistic: str
    need: str  # how a comparison's statistics combine: "any" (better) or "all" (equivalence)
    tests: list[Test] = field(default_factory=list)
    note: str = ""

    def comparisons(self) -> dict[tuple[str, str], list[Test]]:
        groups: dict[tuple[str, str], list[Test]] = {}
        for test in self.tests:
            groups.setdefault((test.scope, test.comparison), []).append(test)
        return groups

    @property
    def verdict(self) -> str:
        verdicts = [combine([t.verdict for t in tests], self.need) for tests in self.comparisons().values()]
        return combine(verdicts, "all")


# --- the verdict rule (docs/claims.md) ---------------------------------------------------------

def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def better_verdict(low: float, high: float, ceiling: bool = False) -> str:
    """P(X > Y)'s CI above ½: supported; below ½: contradicted; else inconclusive (``ceiling``:
    both at the ceiling)."""
    if _finite(low, high) and low > 0.5:
        return SUPPORTED
    if _finite(low, high) and high < 0.5:
        return CONTRADICTED
    return CEILING if ceiling else INCONCLUSIVE


def equivalence_verdict(low: float, high: float, margin: float, ceiling: bool = False) -> str:
    """CI of IQM(X) − IQM(Y) inside [−δ, δ]: supported; disjoint from it: contradicted; else, or
    when both are at the ceiling (a tie the ceiling forces), inconclusive."""
    if ceiling:
        return CEILING
    if not _finite(low, high):
        return INCONCLUSIVE
    if -margin <= low and high <= margin:
        return SUPPORTED
    if low > margin or high < -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def non_inferiority_verdict(low: float, high: float, margin: float, ceiling: bool = False) -> str:
    """CI of IQM(X) − IQM(Y) above −δ: supported; below −δ: contradicted; else (or both at the
    ceiling) inconclusive."""
    if ceiling:
        return CEILING
    if _finite(low, high) and low > -margin:
        return SUPPORTED
    if _finite(low, high) and high < -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def combine(verdicts: Sequence[str], need: str) -> str:
    """Several verdicts as one: any contradicted ⇒ contradicted; else supported when ``need`` is
    ``"any"`` and one is, or ``"all"`` and all are; else ``inconclusive: ceiling`` when every
    unsupported one is, else inconclusive. No verdicts: not tested."""
    if need not in ("any", "all"):
        raise ValueError(f"need must be 'any' or 'all', not {need!r}")
    if not verdicts:
        return NOT_TESTED
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    if (need == "any" and SUPPORTED in verdicts) or all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    rest = [v for v in verdicts if v != SUPPORTED]
    return CEILING if all(v == CEILING for v in rest) else INCONCLUSIVE


# --- tests -------------------------------------------------------------------------------------

def _n(x: np.ndarray, y: np.ndarray) -> str:
    return f"{x.shape[0]}×{x.shape[1]} vs {y.shape[0]}×{y.shape[1]}"


def _difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return interquartile_mean(x) - interquartile_mean(y)


def at_ceiling(scores: np.ndarray, settings: ClaimSettings) -> bool:
    """Whether the IQM CI of a normalised score matrix reaches the ceiling 1 (within the tolerance)."""
    point, _, high = comparison_interval(interquartile_mean, [scores], settings.seed, settings.reps)
    return (high if math.isfinite(high) else point) >= 1 - settings.ceiling_tolerance


def better_test(scope: str, comparison: str, statistic: str, x: np.ndarray, y: np.ndarray,
                settings: ClaimSettings, lower_is_better: bool = False, ceiling: bool = False) -> Test:
    """P(X > Y) (``lower_is_better``: P(X < Y)) with its CI and :func:`better_verdict`."""
    sx, sy = (-x, -y) if lower_is_better else (x, y)
    point, low, high = comparison_interval(probability_of_improvement, [sx, sy], settings.seed, settings.reps)
    return Test(scope, comparison, statistic, "better", point, low, high, _n(x, y), better_verdict(low, high, ceiling))


def difference_test(scope: str, comparison: str, statistic: str, x: np.ndarray, y: np.ndarray,
                    settings: ClaimSettings, kind: str, ceiling: bool = False) -> Test:
    """IQM(X) − IQM(Y) with its CI; ``kind`` ``"equivalent"`` or ``"non-inferior"`` picks the verdict."""
    point, low, high = comparison_interval(_difference, [x, y], settings.seed, settings.reps)
    if kind == "equivalent":
        verdict = equivalence_verdict(low, high, settings.margin, ceiling)
    elif kind == "non-inferior":
        verdict = non_inferiority_verdict(low, high, settings.margin, ceiling)
    else:
        raise ValueError(f"kind must be 'equivalent' or 'non-inferior', not {kind!r}")
    return Test(scope, comparison, statistic, kind, point, low, high, _n(x, y), verdict)


@dataclass(frozen=True)
class _Scope:
    """Where a comparison is made (``name``: suite/algo or suite/method) and the per-run statistics
    (:func:`~varshare.analysis.efficiency.run_statistics`) it draws its score matrices from."""

    name: str
    stats: pd.DataFrame
    settings: ClaimSettings
    ceiling_possible: bool

    @property
    def methods(self) -> set[str]:
        return set(self.stats["method"])

    def matrix(self, algo: str, method: str, statistic: str) -> np.ndarray:
        return score_matrix(self.stats, algo, method, STATISTICS[statistic][0])

    def ceiling(self, statistic: str, *matrices: np.ndarray) -> bool:
        """Whether a final-score comparison is at the ceiling: every matrix's IQM CI reaches it."""
        if statistic != "final" or not self.ceiling_possible:
            return False
        return all(at_ceiling(m, self.settings) for m in matrices)


def _scope(results: SuiteResults, algo: str, settings: ClaimSettings, metric: str | None = None,
           horizon: int | None = None, name: str | None = None) -> _Scope:
    """The scope of ``algo``'s runs on a suite (``algo`` None: every algorithm's), scored by ``metric``."""
    curves = normalised_curves(results.task_curves, results.scores, metric)
    if algo is not None:
        curves = curves[curves["algo"] == algo]
    return _Scope(name or f"{results.suite}/{algo}", run_statistics(curves, settings.threshold, horizon), settings,
                  results.scores.solved_is_ceiling)


def _algos(results: SuiteResults) -> list[str]:
    return ordered_algos(results.task_curves["algo"])


def _compare(claim: Claim, scope: _Scope, kind: str, statistics: Sequence[str], x: str, y: str,
             matrix: Callable[[str, str], np.ndarray], label: str | None = None) -> None:
    """Add to ``claim`` the tests of X vs Y in ``scope``, one per statistic; ``matrix(name,
    statistic)`` gives the score matrix of X or Y."""
    for statistic in statistics:
        mx, my = matrix(x, statistic), matrix(y, statistic)
        ceiling = scope.ceiling(statistic, mx, my)
        name, comparison = STATISTICS[statistic][1], label or f"{x} vs {y}"
        if kind == "better":
            claim.tests.append(better_test(scope.name, comparison, name, mx, my, scope.settings,
                                           STATISTICS[statistic][2], ceiling))
        else:
            claim.tests.append(difference_test(scope.name, comparison, name, mx, my, scope.settings, kind, ceiling))


def _by_method(scope: _Scope, algo: str) -> Callable[[str, str], np.ndarray]:
    return lambda method, statistic: scope.matrix(algo, method, statistic)


def _missing(scope_name: str, wanted: Sequence[str], present: set[str]) -> list[str]:
    gone = [m for m in wanted if m not in present]
    return [f"{scope_name}: {', '.join(gone)}"] if gone else []


def _note(claim: Claim, missing: list[str], nothing: str) -> Claim:
    if not claim.tests:
        claim.note = nothing
    elif missing:
        claim.note = "not run: " + "; ".join(missing)
    return claim


def claim_a(suites: Sequence[SuiteResults], settings: ClaimSettings) -> Claim:
    claim = Claim("a", "VarShare and L2-Soft each beat every other baseline (Independent, Hard Sharing, "
                       "Contextual, PCGrad, CAGrad), on CartPole-10 and LunarLander-20.",
                  "P(X > Y) of final score, AUC and steps to τ", "any")
    missing = []
    for results in suites:
        if results.suite not in COMPARISON_SUITES:
            continue
        for algo in _algos(results):
            scope = _scope(results, algo, settings)
            for x in CHALLENGERS:
                for y in BASELINES:
                    if {x, y} <= scope.methods:
                        _compare(claim, scope, "better", ("final", "auc", "steps"), x, y, _by_method(scope, algo))
            if scope.methods & set(CHALLENGERS):
                missing += _missing(scope.name, COMPARED, scope.methods)
    return _note(claim, missing, "no data: no CartPole-10 or LunarLander-20 results hold VarShare or L2-Soft "
                                 "and a baseline under the same algorithm")


def claim_b(suites: Sequence[SuiteResults], settings: ClaimSettings) -> Claim:
    claim = Claim("b", f"VarShare ≈ L2-Soft: the difference of their IQMs lies within ±{settings.margin:g} "
                       "(normalised score) on CartPole-10 and LunarLander-20.",
                  "IQM(varshare) − IQM(l2_soft) of final score and AUC", "all")
    for results in suites:
        if results.suite not in COMPARISON_SUITES:
            continue
        for algo in _algos(results):
            scope = _scope(results, algo, settings)
            if {"varshare", "l2_soft"} <= scope.methods:
                _compare(claim, scope, "equivalent", ("final", "auc"), "varshare", "l2_soft", _by_method(scope, algo))
    return _note(claim, [], "no data: no CartPole-10 or LunarLander-20 results hold both VarShare and L2-Soft "
                            "under one algorithm")


def claim_c(suites: Sequence[SuiteResults], settings: ClaimSettings) -> Claim:
    claim = Claim("c", f"VarShare's evaluation strategies agree: mean weights ≈ sample-1 ≈ sample-5 (IQM "
                       f"differences within ±{settings.margin:g}).",
                  "IQM differences between strategies, final score and AUC", "all")
    for results in suites:
        if results.scores.metric != "return":
            continue
        logged = set(results.task_curves.loc[results.task_curves["method"] == "varshare", "metric"])
        if not set(STRATEGIES) <= logged:
            continue
        for algo in _algos(results):
            scopes = {metric: _scope(results, algo, settings, metric) for metric in STRATEGIES}
            if not all("varshare" in s.methods for s in scopes.values()):
                continue
            strategies = list(STRATEGIES)
            for i, a in enumerate(strategies):
                for b in strategies[i + 1:]:
                    _compare(claim, scopes[a], "equivalent", ("final", "auc"), a, b,
                             lambda metric, statistic: scopes[metric].matrix(algo, "varshare", statistic),
                             label=f"{STRATEGIES[a]} vs {STRATEGIES[b]}")
    return _note(claim, [], "no data: no return-scored suite has VarShare runs with the sample-1 and sample-5 "
                            "evaluations")


def claim_d(suites: Sequence[SuiteResults], settings: ClaimSettings) -> Claim:
    claim = Claim("d", "Reptile re-centering is the best of the ten VarShare variants: it beats each other variant.",
                  "P(reptile > V) of final score, AUC and steps to τ", "any")
    missing = []
    for results in suites:
        for algo in _algos(results):
            scope = _scope(results, algo, settings)
            if "varshare_reptile" not in scope.methods:
                continue
            for other in VARIANTS:
                if other != "varshare_reptile" and other in scope.methods:
                    _compare(claim, scope, "better", ("final", "auc", "steps"), "varshare_reptile", other,
                             _by_method(scope, algo))
            missing += _missing(scope.name, VARIANTS, scope.methods)
    return _note(claim, missing, "no data: no results hold varshare_reptile and another variant under one algorithm")


def claim_e(suites: Sequence[SuiteResults], settings: ClaimSettings) -> Claim:
    claim = Claim("e", f"Variational LoRA loses little against full-rank VarShare: IQM(lora) − IQM(varshare) > "
                       f"−{settings.margin:g}, with fewer per-task parameters.",
                  "IQM(varshare_lora) − IQM(varshare) of final score and AUC", "all")
    ratios = []
    for results in suites:
        for algo in _algos(results):
            scope = _scope(results, algo, settings)
            if not {"varshare_lora", "varshare"} <= scope.methods:
                continue
            _compare(claim, scope, "non-inferior", ("final", "auc"), "varshare_lora", "varshare", _by_method(scope, algo))
            ratios.append(f"{scope.name}: {_parameter_ratio(results.parameters, algo)}")
    claim = _note(claim, [], "no data: no results hold both varshare_lora and varshare under one algorithm")
    if ratios:
        claim.note = "per-task parameters, LoRA / full rank: " + "; ".join(ratios)
    return claim


def _parameter_ratio(parameters: pd.DataFrame | None, algo: str) -> str:
    if parameters is None or parameters.empty:
        return "unknown (no parameters.csv)"
    rows = parameters[parameters["algo"] == algo].set_index("method")["per_task"]
    if not {"varshare_lora", "varshare"} <= set(rows.index):
        return "unknown"
    lora, full = int(rows["varshare_lora"]), int(rows["varshare"])
    return f"{lora:,} / {full:,} = {lora / full:.1%}"


def claim_f(suites: Sequence[SuiteResults], settings: ClaimSettings) -> Claim:
    claim = Claim("f", "SAC is more sample-efficient than PPO (same method and suite, over the shorter of the "
                       "two budgets).", "P(SAC > PPO) of AUC and steps to τ up to the common horizon", "any")
    untestable = []
    for results in suites:
        table = results.task_curves
        for method in ordered_methods(table["method"]):
            algos = set(table.loc[table["method"] == method, "algo"])
            if not {"ppo", "sac"} <= algos:
                continue
            rows = table[(table["method"] == method) & table["algo"].isin(["ppo", "sac"])]
            horizon = int(min(rows.loc[rows["algo"] == algo, "step"].max() for algo in ("ppo", "sac")))
            scope = _scope(SuiteResults(results.suite, results.scores, rows), None, settings, horizon=horizon,
                           name=f"{results.suite}/{method}")
            if scope.stats["auc"].isna().any():  # one algorithm evaluates only at step 0 up to H
                untestable.append(f"{scope.name} (no evaluation of both algorithms in (0, {horizon:,}] steps)")
                continue
            _compare(claim, scope, "better", ("auc", "steps"), "sac", "ppo",
                     lambda algo, statistic, scope=scope, method=method: scope.matrix(algo, method, statistic),
                     label=f"sac vs ppo (H = {horizon:,} steps)")
    claim = _note(claim, [], "no data: no suite has runs of one method under both PPO and SAC")
    if untestable:
        claim.note = ("" if claim.tests else "no data: ") + "not comparable: " + "; ".join(untestable)
    return claim


def claim_g(suites: Sequence[SuiteResults], settings: ClaimSettings) -> Claim:
    claim = Claim("g", "Residual adaptation (θ frozen) learns a held-out task faster than training from scratch.",
                  "P(residual reaches the threshold in fewer steps than scratch), leave-one-out", "any")
    for results in suites:
        runs = results.loo_runs
        if runs is None or runs.empty:
            continue
        for (algo, method), group in runs.groupby(["algo", "method"], sort=False):
            if not {"residual", "scratch"} <= set(group["regime"]):
                continue
            steps = group.assign(steps=np.where(group["censored"].astype(bool), np.inf,
                                                group["steps_to_threshold"].astype(float)))
            matrices = {regime: (steps[steps["regime"] == regime]
                                 .pivot(index="seed", columns="holdout", values="steps").sort_index().to_numpy(float))
                        for regime in ("residual", "scratch")}
            test = better_test(f"{results.suite}/{algo}/{method}", "residual vs scratch",
                               f"steps to {results.loo_threshold}", matrices["residual"], matrices["scratch"],
                               settings, lower_is_better=True)
            claim.tests.append(test)
    return _note(claim, [], "no data: the preset ran no leave-one-out study with both the residual and the "
                            "scratch regime")


CLAIMS = (claim_a, claim_b, claim_c, claim_d, claim_e, claim_f, claim_g)


def evaluate_claims(suites: Sequence[SuiteResults], settings: ClaimSettings = ClaimSettings()) -> list[Claim]:
    """Every claim of :data:`CLAIMS` on ``suites`` (a claim without data has no tests and a note)."""
    return [build(suites, settings) for build in CLAIMS]


# --- the report --------------------------------------------------------------------------------

SEVERITY = (CONTRADICTED, INCONCLUSIVE, CEILING, SUPPORTED, NOT_TESTED)


def comparison_verdicts(claim: Claim) -> dict[tuple[str, str], str]:
    """(scope, comparison) → the verdict of its statistics combined (:func:`combine` with the
    claim's ``need``)."""
    return {key: combine([t.verdict for t in tests], claim.need) for key, tests in claim.comparisons().items()}


def deciding_test(claim: Claim) -> Test | None:
    """The test that shows why the claim got its verdict: in the comparison with the most severe
    verdict (contradicted, inconclusive, ceiling, supported), the first test with that verdict."""
    verdicts = comparison_verdicts(claim)
    if not verdicts:
        return None
    key = min(verdicts, key=lambda k: SEVERITY.index(verdicts[k]))
    tests = claim.comparisons()[key]
    return next((t for t in tests if t.verdict == verdicts[key]), tests[0])


def _interval(test: Test) -> str:
    if not _finite(test.ci_low, test.ci_high):
        return f"{test.estimate:.3f} [no CI: one seed]"
    return f"{test.estimate:.3f} [{test.ci_low:.3f}, {test.ci_high:.3f}]"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def saturation(suites: Sequence[SuiteResults], settings: ClaimSettings) -> list[str]:
    """One line per (suite, algo) whose score has a ceiling: the methods whose final-score IQM CI
    reaches it."""
    lines = []
    for results in suites:
        if not results.scores.solved_is_ceiling:
            continue
        for algo in _algos(results):
            scope = _scope(results, algo, settings)
            methods = ordered_methods(scope.methods)
            top = [m for m in methods if at_ceiling(scope.matrix(algo, m, "final"), settings)]
            lines.append(f"- {scope.name}: {len(top)} of {len(methods)} methods reach the ceiling with their final "
                         f"score's IQM CI{': ' + ', '.join(top) if top else ''}"
                         + (" — final scores cannot separate these; the AUC and steps to τ still can." if len(top) > 1
                            else "."))
    return lines


def claims_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """Every test of every claim: columns ``claim, scope, comparison, statistic, kind, estimate,
    ci_low, ci_high, n, verdict, comparison_verdict``."""
    rows = []
    for claim in claims:
        verdicts = comparison_verdicts(claim)
        rows += [{"claim": claim.key, **vars(t), "comparison_verdict": verdicts[t.scope, t.comparison]}
                 for t in claim.tests]
    columns = ["claim", "scope", "comparison", "statistic", "kind", "estimate", "ci_low", "ci_high", "n", "verdict",
               "comparison_verdict"]
    return pd.DataFrame(rows, columns=columns)


def claims_markdown(claims: Sequence[Claim], suites: Sequence[SuiteResults], settings: ClaimSettings,
                    sources: str) -> str:
    """The report: settings, a summary row per claim, the suites' saturation, then each claim's tests."""
    lines = [
        "# Claims report", "",
        f"Generated by `varshare claims` from {sources}. Scores are normalised per task (0 = a uniformly random "
        "policy, 1 = solved: CartPole 500, LunarLander 200; Meta-World's success rate as it is). Statistics, "
        "intervals and the verdict rule: `docs/claims.md`. Settings: margin δ = "
        f"{settings.margin:g}, threshold τ = {settings.threshold:g}, ceiling tolerance {settings.ceiling_tolerance:g}, "
        f"{settings.reps} bootstrap replications (runs resampled within each task), seed {settings.seed}. "
        "n = seeds × tasks of X vs Y.", "",
        "## Summary", "",
        "| claim | statistic | comparisons | deciding test: estimate [95% CI], n | verdict |",
        "|---|---|---|---|---|",
    ]
    for claim in claims:
        verdicts = list(comparison_verdicts(claim).values())
        counts = ", ".join(f"{verdicts.count(v)} {v}" for v in SEVERITY[:4] if verdicts.count(v))
        test = deciding_test(claim)
        decided = (f"{test.scope}, {test.comparison}, {test.statistic}: {_interval(test)}, n {test.n}"
                   if test else claim.note)
        lines.append(f"| ({claim.key}) {_cell(claim.sentence)} | {_cell(claim.statistic)} | "
                     f"{len(verdicts)}{': ' + counts if counts else ''} | {_cell(decided)} | **{claim.verdict}** |")
    lines += ["", "## Saturation", ""]
    lines += saturation(suites, settings) or ["No suite with a score ceiling was run."]
    for claim in claims:
        lines += ["", f"## ({claim.key}) {claim.sentence}", "", f"Verdict: **{claim.verdict}**."]
        if claim.note:
            lines += ["", claim.note]
        if not claim.tests:
            continue
        verdicts = comparison_verdicts(claim)
        lines += ["", "| scope | comparison | statistic | estimate [95% CI] | n | test | comparison |",
                  "|---|---|---|---|---|---|---|"]
        for test in claim.tests:
            lines.append(f"| {test.scope} | {_cell(test.comparison)} | {test.statistic} | {_interval(test)} | "
                         f"{test.n} | {test.verdict} | {verdicts[test.scope, test.comparison]} |")
    return "\n".join(lines) + "\n"


def read_suite_results(results: str | Path, score_range: str | Path) -> SuiteResults:
    """A suite's results directory (``task_curves.csv``, ``parameters.csv``, and ``loo/`` when
    present) with its score range (``varshare score-range``)."""
    from varshare.analysis.results import read_table

    results = Path(results)
    scores = ScoreRange.read(score_range)
    parameters = read_table(results, "parameters") if (results / "parameters.csv").is_file() else None
    loo_runs, threshold = None, None
    if (results / "loo" / "loo.json").is_file():
        meta = json.loads((results / "loo" / "loo.json").read_text())
        loo_runs = pd.read_csv(results / "loo" / "loo_runs.csv", dtype={"holdout": str}, keep_default_na=False)
        threshold = f"{meta['metric']} {meta['threshold']:g}"
    return SuiteResults(scores.suite, scores, read_table(results, "task_curves"), parameters, loo_runs, threshold)


def write_claims(suites: Sequence[SuiteResults], settings: ClaimSettings, markdown: str | Path,
                 table: str | Path, sources: str) -> list[Claim]:
    """Evaluate the claims and write the report (``markdown``) and every test (``table``, CSV), atomically."""
    claims = evaluate_claims(suites, settings)
    atomic_write_text(table, claims_table(claims).to_csv(index=False, lineterminator="\n"))
    atomic_write_text(markdown, claims_markdown(claims, suites, settings, sources))
    return claims
