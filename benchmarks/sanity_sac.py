"""Single-task sanity check of SAC: discrete SAC on the default CartPole, continuous SAC on MT10's
``reach-v3`` alone (not a test; it prints what it reaches).

hard_sharing with M = 1 is plain single-task SAC. Hyperparameters: the suite's SAC experiment
config (``configs/cartpole10_sac.yaml``, ``configs/mt10_sac.yaml``). Every ``--eval-every`` env
steps the greedy policy (mean weights) is evaluated on ``--episodes`` episodes; the script prints,
per seed, the first step at which the evaluation return reached 475 (CartPole) or the success rate
0.9 (reach), or "never" within the budget. Run:

    python benchmarks/sanity_sac.py [--task cartpole|reach|both] [--seeds 0 1 2]
        [--cartpole-steps 50000] [--reach-steps 100000] [--eval-every 5000] [--episodes 10]
        [--set sac.train_freq=1 ...]
"""

from __future__ import annotations

import argparse
import time

import torch

from varshare.algos.sac import SAC
from varshare.config import load_config, parse_yaml
from varshare.envs import build_suite, make_vec_env
from varshare.eval.evaluate import evaluate, mean_or_nan
from varshare.methods import make_method

#: task: (suite, task name, experiment config, metric, threshold)
CHECKS = {
    "cartpole": ("cartpole10", "default", "configs/cartpole10_sac.yaml", "return", 475.0),
    "reach": ("mt10", "reach-v3", "configs/mt10_sac.yaml", "success", 0.9),
}


def run(check: str, seed: int, steps: int, eval_every: int, episodes: int,
        overrides: dict) -> tuple[int | None, float]:
    """Train one seed; returns (first step reaching the threshold or None, last evaluation value)."""
    suite, task, config_path, metric, threshold = CHECKS[check]
    config = load_config(config_path, {"methods": ["hard_sharing"], "seeds": [seed], "total_steps_per_task": steps,
                                       "device": "cpu", "sac.steps_per_iteration": eval_every, **overrides})
    specs = [spec for spec in build_suite(suite) if spec.name == task]
    env = make_vec_env(specs, config.envs_per_task, seed=seed)
    agent = SAC(config, make_method("hard_sharing", config, 1, seed), env, seed=seed)
    value, index = float("nan"), 0
    try:
        while agent.iteration < agent.num_iterations:
            agent.iterate()
            index += 1
            eval_seed = 10_000 * seed + index
            log = evaluate(agent.model, lambda n, s=eval_seed: make_vec_env(specs, n, seed=s), episodes)
            value = mean_or_nan(log.returns[0] if metric == "return" else log.successes[0])
            print(f"  {check} seed {seed} step {agent.steps_per_task}: eval {metric} {value:.3g}", flush=True)
            if value >= threshold:
                return agent.steps_per_task, value
    finally:
        env.close()
    return None, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["cartpole", "reach", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cartpole-steps", type=int, default=50_000)
    parser.add_argument("--reach-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the experiment config (dotted key, YAML value), e.g. sac.train_freq=1")
    args = parser.parse_args()
    overrides = {key: parse_yaml(value) for key, _, value in (item.partition("=") for item in args.set)}
    torch.set_num_threads(1)
    checks = ["cartpole", "reach"] if args.task == "both" else [args.task]
    budgets = {"cartpole": args.cartpole_steps, "reach": args.reach_steps}
    for check in checks:
        metric, threshold = CHECKS[check][3:]
        results = []
        for seed in args.seeds:
            start = time.perf_counter()
            reached, last = run(check, seed, budgets[check], args.eval_every, args.episodes, overrides)
            results.append(reached)
            print(f"{check} seed {seed}: eval {metric} >= {threshold:g} first at "
                  f"{reached if reached is not None else 'never'} steps (last {last:.3g}; "
                  f"{time.perf_counter() - start:.0f} s)", flush=True)
        hits = [r for r in results if r is not None]
        print(f"{check}: {len(hits)}/{len(results)} seeds reached eval {metric} {threshold:g} within "
              f"{budgets[check]} steps" + (f" (steps: {', '.join(map(str, hits))})" if hits else ""), flush=True)


if __name__ == "__main__":
    main()
