"""``varshare <command>``: the package's command line, and the only thing pipeline rules call."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

from varshare.config import ALGOS, METHODS, REGIMES, ConfigError, dump_config, load_config, parse_yaml
from varshare.envs.suites import SUITES, build_suite
from varshare.envs.specs import TaskSpecError, read_specs, specs_hash, specs_to_json
from varshare.io import atomic_write_text


def parse_overrides(items: list[str]) -> dict:
    """``["ppo.gamma=0.9", ...]`` → ``{"ppo.gamma": 0.9}`` (values parsed as YAML)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = parse_yaml(value)
    return overrides


def cmd_envs(args: argparse.Namespace) -> int:
    """Write the validated task specs of a suite as a JSON list."""
    specs = build_suite(args.suite)
    atomic_write_text(args.out, specs_to_json(specs))
    print(f"wrote {len(specs)} {args.suite} task specs to {args.out} (sha256 {specs_hash(specs)[:12]})")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate an experiment config (with ``--set key=value`` overrides); print it resolved."""
    try:
        config = load_config(args.config, parse_overrides(args.set))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if args.out:
        dump_config(config, args.out)
    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train one algorithm, method and seed on a suite; write the run directory."""
    from varshare.train import train

    overrides = {"suite": args.suite, "methods": [args.method], "seeds": [args.seed]}
    overrides.update(parse_overrides(args.set))
    if args.holdout is not None:
        overrides["holdout"] = args.holdout
    try:
        config = load_config(args.config, overrides)
        written = parse_yaml(Path(args.config).read_text()).get("suite")
        specs = read_specs(args.tasks) if args.tasks else build_suite(args.suite)
    except (ConfigError, TaskSpecError) as error:
        print(error, file=sys.stderr)
        return 2
    if written is not None and written != args.suite:
        print(f"--suite {args.suite} contradicts the config's suite {written} ({args.config}): its hyperparameters "
              f"are {written}'s; use an experiment config of {args.suite} (e.g. configs/{args.suite}_{config.algo}.yaml) "
              f"or --suite {written}", file=sys.stderr)
        return 2
    if args.algo is not None and args.algo != config.algo:
        print(f"--algo {args.algo} contradicts the config's algo {config.algo} ({args.config}): its "
              f"hyperparameters are {config.algo}'s; use an experiment config of {args.algo} "
              f"(e.g. configs/{args.suite}_{args.algo}.yaml) or leave --algo out", file=sys.stderr)
        return 2
    if {s.family for s in specs} != {s.family for s in build_suite(args.suite)}:
        print(f"--tasks {args.tasks} does not hold {args.suite} tasks", file=sys.stderr)
        return 2
    return _run_training(lambda: train(config, specs, args.method, args.seed, args.out, env_mode=args.env_mode,
                                       replace_stale=args.replace_stale), args.out)


def _run_training(start, out: str) -> int:
    """Run ``start()`` (a training run into ``out``); exit status 2 for a refused run or bad
    argument, 3 for a non-finite loss."""
    from varshare.algos.agent import NonFiniteLossError
    from varshare.train import RunDirectoryConflict, RunSetupError

    try:
        start()
    except (RunDirectoryConflict, RunSetupError) as error:
        print(error, file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        resume = Path(out) / "resume.pt"
        kept = f"the last good checkpoint is kept: {resume}" if resume.exists() else "no checkpoint was reached"
        print(f"training stopped: {error}; {kept}", file=sys.stderr)
        return 3
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    """Leave-one-out: learn a held-out task from a pretrained run under one regime."""
    from varshare.loo import adapt

    try:
        overrides = parse_overrides(args.set)
        specs = read_specs(args.tasks) if args.tasks else None
    except TaskSpecError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        return _run_training(lambda: adapt(args.pretrained, args.task, args.regime, args.out, config=args.config,
                                           overrides=overrides, seed=args.seed, specs=specs, env_mode=args.env_mode,
                                           replace_stale=args.replace_stale), args.out)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2


def cmd_summarize(args: argparse.Namespace) -> int:
    """Print each finished run's final mean evaluation return (and per-task returns with -v)."""
    import json

    from varshare.run_io import METRIC_COLUMNS, MetricsTable

    status = 0
    print(f"{'run':<40} {'steps/task':>10} {'final eval return (task mean)':>30}")
    for directory in map(Path, args.runs):
        done = directory / "done.json"
        if not directory.is_dir():
            print(f"{str(directory):<40} {'no such run directory':>41}")
            status = 1
            continue
        if not done.is_file():
            print(f"{str(directory):<40} {'unfinished (no done.json)':>41}")
            status = 1
            continue
        summary = json.loads(done.read_text())
        print(f"{summary['run']:<40} {summary['steps_per_task']:>10} {summary['final_eval_return_mean']:>30.1f}")
        if args.verbose:
            rows = [dict(zip(METRIC_COLUMNS, r)) for r in MetricsTable.load_rows(directory / "metrics.csv")]
            evals = [r for r in rows if r["metric"] == "eval_return"]
            last = max(r["step"] for r in evals)
            for row in evals:
                if row["step"] == last:
                    print(f"    {row['task']:<36} {row['value']:>10.1f}")
    return status


def cmd_aggregate(args: argparse.Namespace) -> int:
    """Aggregate finished runs of a suite into a results directory (tables, IQM, aggregate.json)."""
    from varshare.analysis.aggregate import RunDirectoryError
    from varshare.analysis.results import write_aggregate

    try:
        summary = write_aggregate(args.runs, args.suite, args.out, bootstrap_seed=args.bootstrap_seed,
                                  reps=args.reps, task_bootstrap=args.task_bootstrap)
    except (RunDirectoryError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    for warning in summary["environment_warnings"]:
        print(warning, file=sys.stderr)
    print(f"aggregated {summary['num_runs']} {args.suite} runs (algos {', '.join(summary['algos'])}; "
          f"methods {', '.join(summary['methods'])}) into {args.out}")
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    """Test the study's claims on results directories: figures/claims.md and every test as CSV."""
    from varshare.analysis.claims import ClaimSettings, read_suite_results, write_claims

    if len(args.results) != len(args.score_range):
        print(f"give one --score-range per --results directory ({len(args.results)} results, "
              f"{len(args.score_range)} score ranges)", file=sys.stderr)
        return 2
    try:
        suites = [read_suite_results(results, scores) for results, scores in zip(args.results, args.score_range)]
        settings = ClaimSettings(margin=args.margin, threshold=args.threshold, ceiling_tolerance=args.ceiling_tolerance,
                                 reps=args.reps, seed=args.bootstrap_seed)
        sources = args.sources or ", ".join(f"`{r}`" for r in args.results)
        claims = write_claims(suites, settings, args.out, args.table, sources)
    except (FileNotFoundError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    for claim in claims:
        print(f"({claim.key}) {claim.verdict}: {len(claim.comparisons())} comparisons, {len(claim.tests)} tests"
              f"{'' if claim.tests else ' (' + claim.note + ')'}")
    print(f"wrote {args.out} and {args.table}")
    return 0


def cmd_rliable_figures(args: argparse.Namespace) -> int:
    """rliable's performance profiles and/or probability-of-improvement plots of a suite, a panel per algorithm."""
    from varshare.config import CHALLENGERS, COMPARED_METHODS as COMPARED
    from varshare.analysis.efficiency import normalised_curves, run_statistics
    from varshare.analysis.results import read_table
    from varshare.analysis.rliable_figures import plot_improvement, plot_performance_profiles
    from varshare.analysis.stats import comparison_interval, probability_of_improvement, score_matrix
    from varshare.analysis.style import ordered_methods
    from varshare.hpo.objective import ScoreRange

    for name in ("profiles", "improvement"):
        if (getattr(args, f"{name}_png") is None) != (getattr(args, f"{name}_pdf") is None):
            print(f"--{name}-png and --{name}-pdf go together", file=sys.stderr)
            return 2
    try:
        scores = ScoreRange.read(args.score_range)
        curves = normalised_curves(read_table(args.results, "task_curves"), scores)
    except (FileNotFoundError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    profiles, improvements = [], []
    for algo in args.algos:
        stats = run_statistics(curves[curves["algo"] == algo], threshold=1.0)
        methods = [m for m in ordered_methods(stats["method"]) if m in COMPARED]
        if not methods:
            print(f"{args.results}: no runs of the compared methods ({', '.join(COMPARED)}) under {algo}",
                  file=sys.stderr)
            return 2
        final = {m: score_matrix(stats, algo, m, "final") for m in methods}
        # VarShare, then L2-Soft, against each other method trained (the pair of the two once)
        pairs = [(x, y) for x in CHALLENGERS if x in final for y in methods
                 if y != x and not (y in CHALLENGERS and CHALLENGERS.index(y) < CHALLENGERS.index(x))]
        profiles.append((algo.upper(), final))
        if pairs:
            improvements.append((algo.upper(), [(x, y, *comparison_interval(
                probability_of_improvement, [final[x], final[y]], args.bootstrap_seed, args.reps)) for x, y in pairs]))
    if args.profiles_png:
        plot_performance_profiles(profiles, args.title, args.profiles_png, args.profiles_pdf,
                                  seed=args.bootstrap_seed, reps=args.reps)
    if args.improvement_png:
        if not improvements:
            print(f"{args.results}: no algorithm of {args.algos} trains {' or '.join(CHALLENGERS)} beside another "
                  "compared method: no probability of improvement to draw", file=sys.stderr)
            return 2
        plot_improvement(improvements, args.title, args.improvement_png, args.improvement_pdf)
    return 0


def cmd_parameters(args: argparse.Namespace) -> int:
    """Parameter counts (total, per task, shared) of each (algo, method) among run directories."""
    from varshare.analysis.parameters import write_parameter_table

    try:
        table = write_parameter_table(args.runs, args.out)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"wrote {args.out}: parameter counts of {len(table)} (algo, method) pairs")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Regenerate requirements.lock from pyproject.toml (uv pip compile; needs the package index)."""
    from varshare.environment import compile_lock

    try:
        count = compile_lock(args.pyproject, args.out, uv=args.uv)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"could not compile the lock: {error}{getattr(error, 'stderr', '') or ''}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {count} pins (torch and its CUDA libraries installed apart)")
    return 0


def cmd_env_check(args: argparse.Namespace) -> int:
    """Is the lock current against pyproject.toml, and is the running environment exactly its pins?"""
    from varshare.environment import environment_record, lock_is_current

    lock = Path(args.lock)
    if not lock.is_file():
        print(f"{lock}: no lock file (make lock writes it)", file=sys.stderr)
        return 2
    current = lock_is_current(lock, args.pyproject)
    record = environment_record(lock)
    print(f"lock {lock} (sha256 {record.lock_sha256[:12]}): "
          f"{'current' if current else 'STALE: compiled from other dependencies than ' + args.pyproject + ' declares; run make lock'}")
    print(f"environment vs lock (pip freeze diff): {len(record.differences)} differences")
    for line in record.differences:
        print(f"  {line}")
    return 0 if current and record.matches_lock else 1


def cmd_figure(args: argparse.Namespace) -> int:
    """Draw the learning-curve (and optionally IQM) figures of a results directory."""
    from varshare.analysis.figures import plot_iqm, plot_learning_curves
    from varshare.analysis.results import read_table, select_rows, selection_text

    if (args.iqm_png is None) != (args.iqm_pdf is None):
        print("--iqm-png and --iqm-pdf go together", file=sys.stderr)
        return 2
    try:
        curves = read_table(args.results, "eval_curves")
        iqm = read_table(args.results, "iqm") if args.iqm_png else None
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    curves = select_rows(curves, args.methods, args.algo)
    iqm = select_rows(iqm, args.methods, args.algo) if iqm is not None else None
    if curves.empty:
        print(f"{args.results}: no eval_curves rows for {selection_text(args.methods, args.algo)}", file=sys.stderr)
        return 2
    plot_learning_curves(curves, args.title, args.curves_png, args.curves_pdf)
    if iqm is not None:
        plot_iqm(iqm, args.title, args.iqm_png, args.iqm_pdf)
    return 0


def cmd_loo_aggregate(args: argparse.Namespace) -> int:
    """Leave-one-out tables of a suite's adaptation runs (curves, steps-to-threshold, zero-shot)."""
    from varshare.analysis.aggregate import RunDirectoryError
    from varshare.analysis.loo import write_loo_results

    try:
        summary = write_loo_results(args.runs, args.suite, args.threshold, args.out,
                                    bootstrap_seed=args.bootstrap_seed, reps=args.reps, metric=args.metric)
    except (RunDirectoryError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    table = read_csv_table(Path(args.out) / "loo_summary.csv")
    print(f"leave-one-out, {args.suite}: {len(args.runs)} adaptation runs (algos {', '.join(summary['algos'])}; "
          f"methods {', '.join(summary['methods'])}), "
          f"steps to {args.metric} >= {args.threshold:g} (mean [95% CI]; censored runs count as the budget):")
    for row in table.itertuples(index=False):
        print(f"  {row.algo:<5} {row.method:<14} {row.regime:<9} steps {row.steps_to_threshold:>9.0f} "
              f"[{row.steps_to_threshold_ci_low:.0f}, {row.steps_to_threshold_ci_high:.0f}]  "
              f"censored {row.num_censored}/{row.num_runs}  zero-shot {args.metric} {row.zero_shot_score:.2f} "
              f"[{row.zero_shot_score_ci_low:.2f}, {row.zero_shot_score_ci_high:.2f}]  "
              f"final {args.metric} {row.final_score:.2f}")
    skipped = read_csv_table(Path(args.out) / "loo_skipped.csv")
    for row in skipped.drop_duplicates(["algo", "method", "regime"]).itertuples(index=False):
        print(f"  {row.algo:<5} {row.method:<14} {row.regime:<9} {row.reason}")
    print(f"wrote {args.out}")
    return 0


def cmd_loo_figure(args: argparse.Namespace) -> int:
    """Draw the leave-one-out figure of a suite from its ``loo-aggregate`` tables."""
    import json

    from varshare.analysis.figures import plot_loo
    from varshare.analysis.results import select_rows

    results = Path(args.results)
    try:
        meta = json.loads((results / "loo.json").read_text())
        tables = {name: select_rows(read_csv_table(results / f"{name}.csv"), algo=args.algo)
                  for name in ("loo_curves", "loo_summary", "loo_skipped")}
    except FileNotFoundError as error:
        print(f"{error}; run `varshare loo-aggregate` first", file=sys.stderr)
        return 2
    if tables["loo_curves"].empty and tables["loo_skipped"].empty:
        print(f"{results}: no leave-one-out runs of algo {args.algo!r}", file=sys.stderr)
        return 2
    plot_loo(tables["loo_curves"], tables["loo_summary"], tables["loo_skipped"], meta["threshold"], args.title,
             args.png, args.pdf, seed=meta["bootstrap"]["seed"], metric=meta["metric"])
    return 0


def read_csv_table(path: Path):
    """A results CSV with its name-like columns (run, algo, method, regime, holdout, task, metric,
    reason) kept as strings."""
    import pandas as pd

    columns = pd.read_csv(path, nrows=0).columns
    names = [c for c in ("run", "algo", "method", "regime", "holdout", "task", "metric", "reason") if c in columns]
    return pd.read_csv(path, dtype={c: str for c in names}, keep_default_na=False,
                       na_values={c: ["", "nan", "NaN"] for c in columns if c not in names})


def cmd_plot(args: argparse.Namespace) -> int:
    """Multi-panel figures (one panel per results directory, i.e. per suite): the portfolio figures
    of one algorithm, (kind ``algos``) Fig. 6, the algorithms of ``--algos`` against each other
    (with ``--tuned-results``, beside each panel's tuned-hyperparameter curves), or (kind ``mt10``)
    Fig. 7, MT10's success rates, a row per algorithm."""
    import pandas as pd

    from varshare.analysis.figures import plot_algorithm_comparison, plot_curve_panels, plot_pruning, plot_sharing_map
    from varshare.analysis.results import read_table, select_rows, selection_text

    if len(args.panel_titles) != len(args.results):
        print("give one --panel-titles entry per --results directory", file=sys.stderr)
        return 2
    if args.tuned_results is not None and args.kind != "algos":
        print("--tuned-results is for kind algos (Fig. 6)", file=sys.stderr)
        return 2
    if args.tuned_results is not None and len(args.tuned_results) != len(args.results):
        print("give one --tuned-results entry (a results directory, or none) per --results directory",
              file=sys.stderr)
        return 2
    if args.kind == "mt10":
        return _plot_mt10(args)
    if args.kind == "algos" and (len(set(args.algos or [])) < 2 or args.algo is not None):
        print("kind algos compares two or more distinct algorithms, given with --algos (and takes no --algo)",
              file=sys.stderr)
        return 2
    if args.kind != "algos" and args.algos is not None:
        print("--algos is for kind algos; the other kinds draw one algorithm with --algo", file=sys.stderr)
        return 2
    table = {"curves": "eval_curves", "strategies": "strategy_curves", "sharing-map": "sharing_map",
             "pruning": "pruning/*", "algos": "eval_curves"}[args.kind]
    panels = []
    for results, panel_title in zip(args.results, args.panel_titles):
        if args.kind == "pruning":
            sweeps = sorted(Path(results).glob("pruning/*.csv"))
            data = (pd.concat([read_csv_table(p) for p in sweeps]) if sweeps
                    else pd.DataFrame(columns=["algo", "method"]))
        else:
            data = read_table(results, table)
        data = select_rows(data, args.methods, args.algo)
        if data.empty:
            print(f"{results}: no {table} rows for {selection_text(args.methods, args.algo)}", file=sys.stderr)
            return 2
        panels.append((panel_title, data))
    tuned = None
    if args.tuned_results is not None:
        tuned = []
        for results in args.tuned_results:
            if results == "none":
                tuned.append(None)
                continue
            try:
                data = select_rows(read_table(results, "eval_curves"), args.methods, None)
            except FileNotFoundError as error:
                print(error, file=sys.stderr)
                return 2
            if data.empty:
                print(f"{results}: no eval_curves rows for {selection_text(args.methods, None)} (tuned results; "
                      "give none for a panel without tuned runs)", file=sys.stderr)
                return 2
            tuned.append(data)
    if args.kind == "curves":
        plot_curve_panels(panels, args.title, args.png, args.pdf)
    elif args.kind == "strategies":
        plot_curve_panels(panels, args.title, args.png, args.pdf, hue="strategy")
    elif args.kind == "pruning":
        plot_pruning(panels, args.title, args.png, args.pdf)
    elif args.kind == "algos":
        try:
            plot_algorithm_comparison(panels, args.algos, args.methods, args.title, args.png, args.pdf,
                                      tuned=tuned)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
    else:
        plot_sharing_map(panels, args.title, args.png, args.pdf)
    return 0


def _plot_mt10(args: argparse.Namespace) -> int:
    """Fig. 7 from one results directory's success tables (``varshare plot mt10``)."""
    from varshare.analysis.mt10 import per_task_success, plot_mt10, success_bands
    from varshare.analysis.results import read_table, select_rows, selection_text

    if len(args.results) != 1:
        print("kind mt10 draws one results directory (the MT10 suite's)", file=sys.stderr)
        return 2
    tables = {}
    for name in ("success_curves", "success_iqm", "final_success"):
        try:
            tables[name] = select_rows(read_table(args.results[0], name), args.methods, args.algo)
        except FileNotFoundError as error:
            print(error, file=sys.stderr)
            return 2
        if tables[name].empty:
            print(f"{args.results[0]}: no {name} rows for {selection_text(args.methods, args.algo)} "
                  "(do the runs log eval_success?)", file=sys.stderr)
            return 2
    bands = success_bands(tables["success_curves"], seed=args.bootstrap_seed)
    plot_mt10(bands, tables["success_iqm"], per_task_success(tables["final_success"]), args.title, args.png, args.pdf,
              suite_title=args.panel_titles[0])
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Prune a finished run's residual means at each ε, re-evaluate, write a tidy CSV."""
    from varshare.eval.pruning import PRUNING_COLUMNS, PruningError, prune_sweep, write_csv

    out = Path(args.out) if args.out else Path(args.run) / "pruning.csv"
    try:
        rows = prune_sweep(args.run, args.eps, episodes=args.episodes, eval_seed=args.eval_seed, device=args.device)
    except (PruningError, ConfigError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    write_csv(rows, out)
    rows = [dict(zip(PRUNING_COLUMNS, r)) for r in rows]
    summary = {(r["eps"], r["metric"]): r["value"] for r in rows if r["task"] == "all"}
    print(f"{'eps':>10} {'kept fraction':>14} {'bytes/task (sparse)':>20} {'bytes/task (dense)':>19} "
          f"{'mean return':>12}")
    for eps in sorted({r["eps"] for r in rows}):
        print(f"{eps:>10g} {summary[eps, 'kept_fraction']:>14.4f} {summary[eps, 'task_bytes_sparse']:>20.0f} "
              f"{summary[eps, 'task_bytes_dense']:>19.0f} {summary[eps, 'eval_return_mean']:>12.2f}")
    print(f"wrote {out}")
    return 0


def cmd_score_range(args: argparse.Namespace) -> int:
    """Measure a suite's score range (random-policy returns per task) for the HPO objective."""
    from varshare.hpo.objective import score_range, write_score_range

    try:
        specs = read_specs(args.tasks) if args.tasks else build_suite(args.suite)
    except TaskSpecError as error:
        print(error, file=sys.stderr)
        return 2
    scores = score_range(args.suite, specs, args.episodes, args.seed)
    write_score_range(args.out, scores)
    low = ", ".join(f"{task} {value:.1f}" for task, value in scores.random.items())
    print(f"{args.suite}: score = ({scores.metric} - random) / ({scores.solved:g} - random); random: {low}")
    return 0


def cmd_hpo_study(args: argparse.Namespace) -> int:
    """Create a hyperparameter study of one method (study.yaml and its journal, default trial queued)."""
    from varshare.hpo.objective import ScoreRange
    from varshare.hpo.space import load_space_file, study_space
    from varshare.hpo.spec import StudySettings, build_study_spec
    from varshare.hpo.study import create_study

    from pydantic import ValidationError

    from varshare.config import describe_error, expand_dotted

    try:
        settings = StudySettings.model_validate(expand_dotted(parse_overrides(args.study_set)))
    except ValidationError as exc:
        print("\n".join(f"--study-set {describe_error(e, StudySettings)}" for e in exc.errors()), file=sys.stderr)
        return 2
    try:
        config = load_config(args.config, parse_overrides(args.set))
        space, problems = study_space(load_space_file(args.space), config.algo, args.method,
                                      parse_overrides(args.space_set), where=f"{args.space}")
        if problems:
            raise ConfigError(problems, args.space, "search space")
        spec = build_study_spec(config, args.method, settings, space, ScoreRange.read(args.score_range))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    created = create_study(args.out, spec)
    print(f"{'created' if created else 'kept the existing'} study {spec.name} ({spec.digest()}) in {args.out}: "
          f"{settings.n_trials} trials of {spec.config['total_steps_per_task']} steps per task over "
          f"{', '.join(spec.space)}")
    return 0


def cmd_hpo(args: argparse.Namespace) -> int:
    """Run one worker of a study: trials until the study has n_trials finished."""
    import json

    from varshare.hpo.study import StudySetupError, run_worker

    try:
        specs = read_specs(args.tasks) if args.tasks else None
    except TaskSpecError as error:
        print(error, file=sys.stderr)
        return 2
    if not (Path(args.study) / "study.yaml").is_file():
        print(f"{args.study}: no study.yaml; create the study with `varshare hpo-study` first", file=sys.stderr)
        return 2
    try:
        ran = run_worker(args.study, specs, env_mode=args.env_mode)
    except StudySetupError as error:
        print(error, file=sys.stderr)
        return 2
    if args.done:
        atomic_write_text(args.done, json.dumps({"trials_run": ran}) + "\n")
    return 0


def cmd_hpo_report(args: argparse.Namespace) -> int:
    """A finished study's trials table, best parameters, tuned config and plots."""
    from varshare.hpo.report import write_report

    try:
        summary = write_report(args.study, args.config, args.trials, args.best, args.tuned_config, args.history_png,
                               args.importance_png)
    except (ConfigError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    counts = summary["trials"]
    default = summary["default_value"]
    print(f"{summary['study']}: best trial {summary['best_trial']} score {summary['best_value']:.4f} "
          f"(default hyperparameters {default if default is None else round(default, 4)}); "
          f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed; "
          f"best params {summary['best_params']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="varshare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plot = commands.add_parser("plot", help="multi-panel figures: one panel per results directory")
    plot.add_argument("kind", choices=["curves", "strategies", "sharing-map", "pruning", "algos", "mt10"],
                      help="curves: eval return per method; strategies: mean / sample-1 / sample-5 / "
                           "training return of the methods; sharing-map: mean |mu| per layer and task; "
                           "pruning: return vs kept residual fraction (DIR/pruning/*.csv); algos: eval "
                           "return per method under each algorithm of --algos (Fig. 6, PPO vs SAC); mt10: "
                           "success rate curves, final-success IQM and per-task heatmap, a row per "
                           "algorithm (Fig. 7; one results directory)")
    plot.add_argument("--results", nargs="+", required=True, help="results directories (varshare aggregate)")
    plot.add_argument("--panel-titles", nargs="+", required=True, help="one title per results directory")
    plot.add_argument("--methods", nargs="+", required=True, help="methods to draw")
    plot.add_argument("--algo", metavar="ALGO",
                      help="draw only this algorithm's rows (default: every algorithm present; with several, "
                           "lines are labelled 'name (ALGO)')")
    plot.add_argument("--algos", nargs="+", choices=ALGOS, metavar="ALGO",
                      help="kind algos: the algorithms compared, each needed in every panel (the first solid, "
                           "the next dashed); a panel draws the --methods that all of them trained")
    plot.add_argument("--tuned-results", nargs="+", metavar="DIR",
                      help="kind algos: one per --results directory, in the same order: the panel's results "
                           "directory (varshare aggregate) of runs with tuned hyperparameters, or none; their "
                           "curves of the drawn methods and algorithms are drawn at full strength with markers, "
                           "labelled 'method (ALGO, tuned)', the default ones thinner and lighter")
    plot.add_argument("--bootstrap-seed", type=int, default=0,
                      help="kind mt10: seed of the curves' bootstrap bands over seeds (default 0)")
    plot.add_argument("--title", required=True)
    plot.add_argument("--png", required=True)
    plot.add_argument("--pdf", required=True)
    plot.set_defaults(func=cmd_plot)

    envs = commands.add_parser("envs", help="write a suite's task specs (JSON)")
    envs.add_argument("--suite", required=True, choices=sorted(SUITES))
    envs.add_argument("--out", required=True, help="output JSON file")
    envs.set_defaults(func=cmd_envs)

    check = commands.add_parser("check-config", help="validate an experiment config and print it resolved")
    check.add_argument("config", help="experiment config YAML")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a value (dotted key, YAML value); repeatable")
    check.add_argument("--out", help="also write the resolved config here")
    check.set_defaults(func=cmd_check_config)

    train = commands.add_parser("train", help="train one algorithm, method and seed on a suite")
    train.add_argument("--config", required=True, help="experiment config YAML")
    train.add_argument("--suite", required=True, choices=sorted(SUITES))
    train.add_argument("--algo", choices=ALGOS,
                       help="base RL algorithm: the config's `algo` (ppo where it names none); a different "
                            "--algo is refused")
    train.add_argument("--method", required=True, choices=sorted(METHODS))
    train.add_argument("--seed", required=True, type=int)
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--tasks", help="task-spec JSON (default: build the suite)")
    train.add_argument("--holdout", metavar="TASK",
                       help="leave-one-out: train on every task but TASK (a task name of the suite)")
    train.add_argument("--env-mode", choices=["sync", "async"], default="sync",
                       help="simulator-backed envs in-process or in worker processes")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value (dotted key, YAML value); repeatable")
    train.add_argument("--replace-stale", action="store_true",
                       help="if --out holds a run with another config or task set, clear it (and its "
                            "resume checkpoint) instead of refusing")
    train.set_defaults(func=cmd_train)

    adapt = commands.add_parser("adapt", help="leave-one-out: learn a held-out task from a pretrained run")
    adapt.add_argument("--pretrained", required=True, help="finished run directory trained with --holdout TASK")
    adapt.add_argument("--task", required=True, help="the held-out task to learn (its name)")
    adapt.add_argument("--regime", required=True, choices=REGIMES,
                       help="scratch: fresh init; full: pretrained θ + the method's unseen-task init, all "
                            "parameters train; residual: as full with θ frozen")
    adapt.add_argument("--out", required=True, help="run directory")
    adapt.add_argument("--config", help="experiment config YAML (default: the pretrained run's); its "
                                        "total_steps_per_task is the adaptation budget")
    adapt.add_argument("--seed", type=int, help="seed (default: the pretrained run's)")
    adapt.add_argument("--tasks", help="the suite's task-spec JSON (default: build the suite)")
    adapt.add_argument("--env-mode", choices=["sync", "async"], default="sync",
                       help="simulator-backed envs in-process or in worker processes")
    adapt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value (dotted key, YAML value); repeatable")
    adapt.add_argument("--replace-stale", action="store_true",
                       help="if --out holds another run, clear it instead of refusing")
    adapt.set_defaults(func=cmd_adapt)

    summarize = commands.add_parser("summarize", help="print the final evaluation return of run directories")
    summarize.add_argument("runs", nargs="+", help="run directories written by `varshare train`")
    summarize.add_argument("-v", "--verbose", action="store_true", help="also print per-task returns")
    summarize.set_defaults(func=cmd_summarize)

    aggregate = commands.add_parser("aggregate", help="aggregate finished runs of a suite into result tables")
    aggregate.add_argument("--suite", required=True, choices=sorted(SUITES))
    aggregate.add_argument("--out", required=True, help="results directory")
    aggregate.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the IQM bootstrap (default 0)")
    aggregate.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default 2000)")
    aggregate.add_argument("--task-bootstrap", action="store_true", help="also resample tasks in the bootstrap")
    aggregate.add_argument("runs", nargs="+", help="finished run directories of the suite")
    aggregate.set_defaults(func=cmd_aggregate)

    parameters = commands.add_parser("parameters", help="parameter counts (total, per task, shared) of runs' models")
    parameters.add_argument("--out", required=True, help="CSV, e.g. data/results/<suite>/parameters.csv")
    parameters.add_argument("runs", nargs="+", help="run directories (one per algo and method suffices)")
    parameters.set_defaults(func=cmd_parameters)

    claims = commands.add_parser("claims", help="test the study's claims on results directories (the claims report)")
    claims.add_argument("--results", nargs="+", required=True, help="results directories (varshare aggregate)")
    claims.add_argument("--score-range", nargs="+", required=True,
                        help="each suite's score range (varshare score-range), in --results order")
    claims.add_argument("--out", required=True, help="the report (markdown), e.g. figures/claims.md")
    claims.add_argument("--table", required=True, help="every test as CSV, e.g. figures/claims.csv")
    claims.add_argument("--margin", type=float, default=0.05,
                        help="δ of the equivalence and non-inferiority tests, normalised score (default 0.05)")
    claims.add_argument("--threshold", type=float, default=0.9,
                        help="τ of steps to threshold, normalised score (default 0.9)")
    claims.add_argument("--ceiling-tolerance", type=float, default=0.01,
                        help="an IQM CI reaching 1 − this touches the ceiling (default 0.01)")
    claims.add_argument("--reps", type=int, default=2000, help="bootstrap replications per interval")
    claims.add_argument("--bootstrap-seed", type=int, default=0)
    claims.add_argument("--sources", help="how the report names its inputs (default: the results directories)")
    claims.set_defaults(func=cmd_claims)

    rliable = commands.add_parser("rliable-figures",
                                  help="rliable's performance profiles and/or probability of improvement of a suite")
    rliable.add_argument("--results", required=True, help="the suite's results directory (varshare aggregate)")
    rliable.add_argument("--score-range", required=True, help="the suite's score range (varshare score-range)")
    rliable.add_argument("--algos", nargs="+", required=True, help="a panel per algorithm")
    rliable.add_argument("--title")
    rliable.add_argument("--reps", type=int, default=2000, help="bootstrap replications per interval")
    rliable.add_argument("--bootstrap-seed", type=int, default=0)
    for name in ("profiles", "improvement"):
        for ext in ("png", "pdf"):
            rliable.add_argument(f"--{name}-{ext}", help=f"write the {name} figure ({ext.upper()})")
    rliable.set_defaults(func=cmd_rliable_figures)

    lock = commands.add_parser("lock", help="regenerate requirements.lock from pyproject.toml (uv pip compile)")
    lock.add_argument("--pyproject", default="pyproject.toml")
    lock.add_argument("--out", default="requirements.lock")
    lock.add_argument("--uv", default="uv", help="the uv executable (default: uv on PATH)")
    lock.set_defaults(func=cmd_lock)

    env_check = commands.add_parser("env-check", help="is the lock current, and the environment exactly its pins?")
    env_check.add_argument("--lock", default="requirements.lock")
    env_check.add_argument("--pyproject", default="pyproject.toml")
    env_check.set_defaults(func=cmd_env_check)

    figure = commands.add_parser("figure", help="draw figures from a results directory")
    figure.add_argument("--results", required=True, help="results directory written by `varshare aggregate`")
    figure.add_argument("--title", required=True)
    figure.add_argument("--curves-png", required=True)
    figure.add_argument("--curves-pdf", required=True)
    figure.add_argument("--iqm-png")
    figure.add_argument("--iqm-pdf")
    figure.add_argument("--methods", nargs="+", help="draw only these methods (default: all in the results)")
    figure.add_argument("--algo", metavar="ALGO",
                        help="draw only this algorithm's rows (default: every algorithm present; with several, "
                             "lines and bars are labelled 'method (ALGO)')")
    figure.set_defaults(func=cmd_figure)

    loo_aggregate = commands.add_parser("loo-aggregate", help="leave-one-out tables of a suite's adaptation runs")
    loo_aggregate.add_argument("--suite", required=True, choices=sorted(SUITES))
    loo_aggregate.add_argument("--threshold", required=True, type=float,
                               help="score the held-out task must reach (steps-to-threshold)")
    loo_aggregate.add_argument("--metric", choices=["return", "success"], default="return",
                               help="the score: return (eval_return, default) or success (eval_success, "
                                    "the success rate in [0, 1]: Meta-World)")
    loo_aggregate.add_argument("--out", required=True, help="results directory")
    loo_aggregate.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap CIs (default 0)")
    loo_aggregate.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default 2000)")
    loo_aggregate.add_argument("runs", nargs="+", help="adaptation run directories (`varshare adapt`), skipped ones too")
    loo_aggregate.set_defaults(func=cmd_loo_aggregate)

    loo_figure = commands.add_parser("loo-figure", help="draw the leave-one-out figure of a suite")
    loo_figure.add_argument("--results", required=True, help="results directory written by `varshare loo-aggregate`")
    loo_figure.add_argument("--title", required=True)
    loo_figure.add_argument("--png", required=True)
    loo_figure.add_argument("--pdf", required=True)
    loo_figure.add_argument("--algo", metavar="ALGO",
                            help="draw only this algorithm's runs (default: every algorithm present; with several, "
                                 "a row per 'method (ALGO)')")
    loo_figure.set_defaults(func=cmd_loo_figure)

    prune = commands.add_parser("prune", help="zero small residual means of a finished run, re-evaluate per threshold")
    prune.add_argument("--run", required=True, help="finished run directory (with checkpoint.pt)")
    prune.add_argument("--eps", required=True, nargs="+", type=float,
                       help="thresholds: residual means with |mu| < eps are set to 0 (0 is always included)")
    prune.add_argument("--episodes", type=int, help="evaluation episodes per task (default: the run's eval.episodes)")
    prune.add_argument("--eval-seed", type=int,
                       help="env seed of every evaluation (default: that of the run's final evaluation)")
    prune.add_argument("--device", default="cpu", help="torch device (default cpu)")
    prune.add_argument("--out", help="output CSV (default: RUN/pruning.csv)")
    prune.set_defaults(func=cmd_prune)

    scores = commands.add_parser("score-range", help="random-policy returns per task: the HPO score's normalisation")
    scores.add_argument("--suite", required=True, choices=sorted(SUITES))
    scores.add_argument("--tasks", help="task-spec JSON (default: build the suite)")
    scores.add_argument("--episodes", type=int, default=20, help="random episodes per task (default 20)")
    scores.add_argument("--seed", type=int, default=0, help="env and action seed (default 0)")
    scores.add_argument("--out", required=True, help="output JSON")
    scores.set_defaults(func=cmd_score_range)

    study = commands.add_parser("hpo-study", help="create a hyperparameter study of one method (Optuna, journal file)")
    study.add_argument("--config", required=True, help="experiment config YAML of the suite and algorithm")
    study.add_argument("--method", required=True, choices=sorted(METHODS))
    study.add_argument("--space", required=True, help="search-space file (e.g. configs/hpo_space.yaml)")
    study.add_argument("--score-range", required=True, help="`varshare score-range` output of the suite")
    study.add_argument("--out", required=True, help="study directory")
    study.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="trial-config override (dotted key; e.g. the trial budget); repeatable")
    study.add_argument("--study-set", action="append", default=[], metavar="KEY=VALUE",
                       help="study setting (n_trials, seed, trial_seed, startup_trials, pruner.type, ...; "
                            "varshare.hpo.spec.StudySettings); repeatable")
    study.add_argument("--space-set", action="append", default=[], metavar="KEY=DIMENSION",
                       help="replace a search dimension, e.g. 'ppo.gamma={type: float, low: 0.9, high: 0.99}' "
                            "(null removes it); repeatable")
    study.set_defaults(func=cmd_hpo_study)

    hpo = commands.add_parser("hpo", help="run a worker of a study: trials until it has n_trials finished")
    hpo.add_argument("--study", required=True, help="study directory (`varshare hpo-study`)")
    hpo.add_argument("--tasks", help="the suite's task-spec JSON (default: build the suite)")
    hpo.add_argument("--env-mode", choices=["sync", "async"], default="sync",
                     help="simulator-backed envs in-process or in worker processes")
    hpo.add_argument("--done", help="write this marker when the study is complete")
    hpo.set_defaults(func=cmd_hpo)

    report = commands.add_parser("hpo-report", help="a finished study's trials, best parameters, tuned config, plots")
    report.add_argument("--study", required=True, help="study directory")
    report.add_argument("--config", required=True,
                        help="experiment config the tuned config starts from (full budget, the plan's seeds)")
    report.add_argument("--trials", required=True, help="output: trials table (CSV)")
    report.add_argument("--best", required=True, help="output: best parameters and objectives (YAML)")
    report.add_argument("--tuned-config", required=True, help="output: --config with the best parameters (YAML)")
    report.add_argument("--history-png", required=True, help="output: optimisation history")
    report.add_argument("--importance-png", required=True, help="output: parameter importances")
    report.set_defaults(func=cmd_hpo_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
