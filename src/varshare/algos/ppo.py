"""Multi-task PPO, method-agnostic: every task's rollout and update run as one batched program.

Read top to bottom like CleanRL's ``ppo.py``; the differences are the task axis and the method hooks:

* Tensors are task-major: ``[M, T, N, ...]`` in the rollout, ``[M, B, ...]`` in minibatches (the same
  transition indices are drawn for every task, so each minibatch holds ``B`` examples per task).
* The method decides the network layout (:meth:`Method.build_model`), adds its loss term
  (:meth:`Method.extra_loss`) and, where it wants per-task gradients of the shared parameters,
  combines them (:meth:`Method.combine_gradients`). PPO never branches on a method's name.
* Stochastic-weight methods: rollout noise (``ε``) is drawn once per rollout and per-example noise
  is stored with each transition, so the update replays exactly the weight sample that chose each
  action. Old log-probabilities are then recomputed with the update's own arithmetic (same
  minibatch layout as the first minibatch), which makes the first minibatch's ratio exactly 1 and
  its approximate KL exactly 0. The largest difference between these and the rollout-time
  log-probabilities is logged (``logprob_replay_error``): it is float rounding only.
* Losses are per task (mean over the task's examples) and summed over tasks; advantages are
  normalised per task within each minibatch. Truncated episodes are bootstrapped by adding
  ``γ·V(final_obs)`` to the last reward; terminated ones are not.
* Per-task gradients of shared parameters come from one backward pass: the shared parameters are
  replaced (``torch.func.functional_call``) by task-replicated leaves ``[M, *shape]``, whose
  gradients are the per-task gradients.
* Frozen parameters (``requires_grad`` False, e.g. θ in leave-one-out residual adaptation) are left
  out of the optimizer and of the per-task-gradient path, so nothing ever writes them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from varshare.algos.gather import select_examples
from varshare.config import ExperimentConfig
from varshare.envs.base import MultiTaskVecEnv
from varshare.eval.strategies import EvalPolicy
from varshare.methods.base import Method
from varshare.nn import ActorCritic, Noise


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stops rather than corrupt the model."""


@dataclass
class Rollout:
    """One rollout of ``T`` steps of ``N`` copies of ``M`` tasks; arrays ``[M, T, N, ...]``.

    ``logprobs`` and ``values`` are the behaviour policy's; ``rewards`` already include the
    ``γ·V(final_obs)`` bootstrap of truncated episodes; ``episode_ended`` is 1 where an episode
    ended with that transition. ``example_noise`` holds each transition's per-example weight noise
    (``[M, T, N, k]`` per key), ``rollout_noise`` the noise shared by the whole rollout, and
    ``next_value`` ``[M, N]`` the value of the observation after the last step. ``mean_weights``:
    the rollout used the mean weights (no noise was drawn or stored).
    """

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    rewards: Tensor
    episode_ended: Tensor
    example_noise: Noise
    rollout_noise: Noise
    next_value: Tensor
    mean_weights: bool = False


@dataclass
class EpisodeLog:
    """Finished training episodes since the last report, per task (lists of floats)."""

    returns: list[list[float]]
    lengths: list[list[int]]
    successes: list[list[bool]]

    @classmethod
    def empty(cls, num_tasks: int) -> EpisodeLog:
        return cls([[] for _ in range(num_tasks)], [[] for _ in range(num_tasks)], [[] for _ in range(num_tasks)])


def compute_gae(
    rewards: Tensor, values: Tensor, episode_ended: Tensor, next_value: Tensor, gamma: float, gae_lambda: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over the time axis.

    Args:
        rewards, values, episode_ended: ``[M, T, N]``; ``episode_ended[t]`` is 1 where the
            episode ended with transition ``t`` (then obs ``t+1`` belongs to a new episode).
            Truncated episodes must already carry their bootstrap in ``rewards``.
        next_value: ``[M, N]`` value of the observation after the last step.

    Returns:
        ``(advantages, returns)``, each ``[M, T, N]``.
    """
    num_steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last_advantage = torch.zeros_like(next_value)
    for t in reversed(range(num_steps)):
        following_value = next_value if t == num_steps - 1 else values[:, t + 1]
        continues = 1.0 - episode_ended[:, t]
        delta = rewards[:, t] + gamma * following_value * continues - values[:, t]
        last_advantage = delta + gamma * gae_lambda * continues * last_advantage
        advantages[:, t] = last_advantage
    return advantages, advantages + values


def sample_actions(output, generator: torch.Generator) -> Tensor:
    """Draw actions ``[M, N]`` (or ``[M, N, act_dim]``) from the policy with ``generator``."""
    if output.log_std is None:
        probs = torch.softmax(output.logits, dim=-1)
        flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        return flat.reshape(probs.shape[:-1])
    noise = torch.randn(output.logits.shape, generator=generator, device=output.logits.device)
    return output.logits + output.log_std.exp() * noise


def greedy_actions(output) -> Tensor:
    """The deterministic policy's actions: argmax (discrete) or the mean (continuous)."""
    return output.logits.argmax(dim=-1) if output.log_std is None else output.logits


class PPO:
    """Multi-task PPO on a :class:`MultiTaskVecEnv` with a sharing :class:`Method`.

    Args:
        config: the experiment config (``ppo``, ``network`` and the method's section are read).
        method: the sharing method (owns the network layout, extra loss, gradient combiner).
        env: the training environment (``M`` tasks × ``config.envs_per_task`` copies).
        seed: seeds the network init and the run's generator (actions, noise, minibatches).
        device: torch device.
        init_model: called with the freshly built model before the optimizer is created, e.g. to
            load pretrained weights and freeze some (``requires_grad_(False)``); the optimizer
            holds only the parameters that still require gradients.
    """

    def __init__(self, config: ExperimentConfig, method: Method, env: MultiTaskVecEnv, seed: int, device="cpu",
                 init_model: Callable[[ActorCritic], None] | None = None):
        self.config = config
        self.ppo = config.ppo
        self.method = method
        self.env = env
        self.device = torch.device(device)
        self.num_tasks = env.num_tasks
        self.num_envs = env.envs_per_task
        action_dim = env.single_action_space.n if env.is_discrete else env.single_action_space.shape[0]
        torch.manual_seed(seed)
        self.model: ActorCritic = method.build_model(env.obs_dim, int(action_dim), env.is_discrete).to(self.device)
        if init_model is not None:
            init_model(self.model)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=self.ppo.learning_rate, eps=1e-5, fused=True)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.batch_per_task = self.ppo.num_steps * self.num_envs
        self.minibatch_per_task = self.batch_per_task // self.ppo.num_minibatches
        if self.minibatch_per_task < 2:
            raise ValueError(
                f"a minibatch needs at least 2 transitions per task to normalise advantages; got "
                f"envs_per_task × ppo.num_steps / ppo.num_minibatches = {self.minibatch_per_task}"
            )
        self.num_iterations = max(1, config.total_steps_per_task // self.batch_per_task)
        self.iteration = 0
        self.steps_per_task = 0
        self.episodes = EpisodeLog.empty(self.num_tasks)
        self.next_obs = self._tensor(env.reset())

    # ----------------------------------------------------------------------------------------
    # rollout
    def collect_rollout(self) -> Rollout:
        """Run ``num_steps`` steps of every copy with the current policy and one rollout noise."""
        M, T, N = self.num_tasks, self.ppo.num_steps, self.num_envs
        model, gamma = self.model, self.ppo.gamma
        mean_weights = self.method.rollout_mean_weights
        rollout_noise = {} if mean_weights else model.rollout_noise(self.generator)
        cached = None if mean_weights else model.rollout_cache(rollout_noise)  # replaces rollout_noise
        obs = torch.zeros((M, T, N, self.env.obs_dim), device=self.device)
        action_shape = () if self.env.is_discrete else self.env.single_action_space.shape
        actions = torch.zeros((M, T, N, *action_shape), device=self.device,
                              dtype=torch.long if self.env.is_discrete else torch.float32)
        logprobs, values, rewards, ended = (torch.zeros((M, T, N), device=self.device) for _ in range(4))
        example_noise = {} if mean_weights else {  # every transition's per-example noise: [M, T, N, k]
            key: value.view(M, T, N, -1) for key, value in model.example_noise(T * N, self.generator).items()
        }
        # each step's slice of that noise, in the activations' dtype: converted once per rollout (signs
        # are stored as int8; not two casts per layer and step) and sliced by one unbind per tensor
        step_slices = [value.to(obs.dtype).unbind(1) for value in example_noise.values()]
        step_noise = [{**cached, **dict(zip(example_noise, views))} for views in zip(*step_slices)] if step_slices \
            else [cached] * T
        with torch.inference_mode():
            for t in range(T):
                noise = step_noise[t]  # None throughout for mean-weight rollouts
                output = model(self.next_obs, noise)
                action = sample_actions(output, self.generator)
                obs[:, t] = self.next_obs
                actions[:, t] = action
                logprobs[:, t] = output.log_prob(action)
                values[:, t] = output.value

                step = self.env.step(action.cpu().numpy())
                reward = self._tensor(step.reward)
                bootstrap = step.truncated & ~step.terminated
                if bootstrap.any():
                    final_value = model(self._tensor(step.final_obs), noise).value
                    reward = reward + gamma * final_value * self._tensor(bootstrap)
                rewards[:, t] = reward
                ended[:, t] = self._tensor(step.done)
                self.next_obs = self._tensor(step.obs)
                self._record_episodes(step)
            next_noise = None if mean_weights else {**cached, **model.example_noise(N, self.generator)}
            next_value = model(self.next_obs, next_noise).value

        self.steps_per_task += T * N
        return Rollout(obs, actions, logprobs, values, rewards, ended, example_noise, rollout_noise, next_value,
                       mean_weights)

    def _record_episodes(self, step) -> None:
        done = step.done
        if not done.any():
            return
        for m, n in zip(*np.nonzero(done)):
            self.episodes.returns[m].append(float(step.episode_return[m, n]))
            self.episodes.lengths[m].append(int(step.episode_length[m, n]))
            self.episodes.successes[m].append(bool(step.episode_success[m, n]))

    # ----------------------------------------------------------------------------------------
    # update
    def update(self, rollout: Rollout) -> dict[str, float]:
        """``update_epochs`` passes of clipped-surrogate minibatch updates over ``rollout``."""
        p = self.ppo
        M, B = self.num_tasks, self.batch_per_task
        advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.episode_ended,
                                          rollout.next_value, p.gamma, p.gae_lambda)

        def flat(x: Tensor) -> Tensor:  # [M, T, N, ...] -> [M, T*N, ...]
            return x.reshape(M, B, *x.shape[3:])

        batch = {
            "obs": flat(rollout.obs), "actions": flat(rollout.actions), "values": flat(rollout.values),
            "advantages": flat(advantages), "returns": flat(returns),
        }
        if rollout.mean_weights:  # behaviour: mean weights; the update samples fresh noise
            update_noise = self.model.rollout_noise(self.generator)
            batch_noise = self.model.example_noise(B, self.generator)
        else:  # replay the rollout's noise
            update_noise = rollout.rollout_noise
            batch_noise = {k: flat(v) for k, v in rollout.example_noise.items()}
        permutations = [torch.randperm(B, generator=self.generator, device=self.device) for _ in range(p.update_epochs)]

        def shuffled(perm: Tensor) -> tuple[dict[str, Tensor], Noise]:
            """The batch and per-example noise in ``perm``'s order: one gather per tensor and epoch;
            minibatches are then consecutive slices (views) of it."""
            return ({k: select_examples(v, perm) for k, v in batch.items()},
                    {k: select_examples(v, perm) for k, v in batch_noise.items()})

        def minibatches(epoch_batch: dict[str, Tensor], epoch_noise: Noise):
            for start in range(0, B, self.minibatch_per_task):
                window = slice(start, start + self.minibatch_per_task)
                yield ({k: v[:, window] for k, v in epoch_batch.items()},
                       {**update_noise, **{k: v[:, window] for k, v in epoch_noise.items()}})

        first_epoch = shuffled(permutations[0])
        replayed = self._replay_logprobs(minibatches(*first_epoch), rollout.mean_weights)  # epoch-0 order
        old_logprobs = torch.empty_like(replayed)
        old_logprobs[:, permutations[0]] = replayed  # back to rollout order
        replay_error = (old_logprobs - flat(rollout.logprobs)).abs().max().item()

        stats: dict[str, list[float]] = {}
        for epoch, perm in enumerate(permutations):
            epoch_batch, epoch_noise = first_epoch if epoch == 0 else shuffled(perm)
            epoch_batch["old_logprobs"] = select_examples(old_logprobs, perm)
            for mb, noise in minibatches(epoch_batch, epoch_noise):
                for key, value in self._minibatch_step(mb, noise).items():
                    stats.setdefault(key, []).append(value)

        values = {key: float(np.mean(v)) for key, v in stats.items()}
        values["ratio_first_minibatch"] = stats["ratio_mean"][0]
        values["approx_kl_first_minibatch"] = stats["approx_kl"][0]
        values["logprob_replay_error"] = replay_error
        y_pred, y_true = batch["values"].flatten(), batch["returns"].flatten()
        var_y = torch.var(y_true)
        values["explained_variance"] = float("nan") if var_y == 0 else float(1 - torch.var(y_true - y_pred) / var_y)
        values.update(self.method.diagnostics(self.model))
        return values

    def _replica_parameters(self) -> dict[str, Tensor] | None:
        """Task-replicated copies ``[M, *shape]`` of the trainable shared parameters (leaves that
        collect per-task gradients; frozen ones stay in the model, untouched), or None when the
        method does not need per-task gradients or every shared parameter is frozen."""
        if not self.method.per_task_gradients:
            return None
        replicas = {
            name: param.detach().unsqueeze(0).repeat(self.num_tasks, *([1] * param.dim())).requires_grad_()
            for name, param in self.model.shared_parameters().items() if param.requires_grad
        }
        return replicas or None

    def _forward(self, obs: Tensor, noise: Noise, replicas: dict[str, Tensor] | None):
        if replicas is None:
            return self.model(obs, noise)
        return functional_call(self.model, replicas, (obs, noise))

    def _replay_logprobs(self, first_epoch_minibatches, mean_weights: bool) -> Tensor:
        """``[M, B]`` log-probabilities of the rollout's actions under the rollout's weights and noise
        (mean weights if ``mean_weights``), computed minibatch by minibatch exactly as the first
        epoch's training steps (same tensors, same layout), in that epoch's example order.
        ``first_epoch_minibatches``: its ``(minibatch, noise)`` pairs."""
        old = []
        with torch.no_grad():
            replicas = self._replica_parameters()
            for mb, noise in first_epoch_minibatches:
                output = self._forward(mb["obs"], None if mean_weights else noise, replicas)
                old.append(output.log_prob(mb["actions"]))
        return torch.cat(old, dim=1)

    def _minibatch_step(self, mb: dict[str, Tensor], noise: Noise) -> dict[str, float]:
        """One clipped-surrogate step on minibatch ``mb`` (``[M, b, ...]`` tensors, the behaviour
        policy's ``old_logprobs`` among them) with weight noise ``noise``; returns its statistics."""
        p = self.ppo
        replicas = self._replica_parameters()
        output = self._forward(mb["obs"], noise, replicas)
        new_logprob = output.log_prob(mb["actions"])
        entropy = output.entropy()
        log_ratio = new_logprob - mb["old_logprobs"]
        ratio = log_ratio.exp()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clip_fraction = ((ratio - 1.0).abs() > p.clip_coef).float().mean()

        advantages = mb["advantages"]
        if p.norm_adv:  # per task, within the minibatch
            advantages = (advantages - advantages.mean(dim=1, keepdim=True)) / (advantages.std(dim=1, keepdim=True) + 1e-8)
        pg_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - p.clip_coef, 1 + p.clip_coef)).mean(dim=1)

        new_value = output.value
        if p.clip_vloss:
            clipped = mb["values"] + (new_value - mb["values"]).clamp(-p.clip_coef, p.clip_coef)
            v_loss = 0.5 * torch.max((new_value - mb["returns"]).square(), (clipped - mb["returns"]).square()).mean(dim=1)
        else:
            v_loss = 0.5 * (new_value - mb["returns"]).square().mean(dim=1)
        entropy_mean = entropy.mean(dim=1)

        rl_loss = (pg_loss - p.ent_coef * entropy_mean + p.vf_coef * v_loss).sum()
        extra_loss, extra_stats = self.method.extra_loss(self.model, self.batch_per_task)
        loss = rl_loss + extra_loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss at iteration {self.iteration} (rl_loss={rl_loss.item()}, "
                f"extra_loss={float(extra_loss)}); stopping"
            )

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        extra_stats = dict(extra_stats)
        if replicas is not None:
            extra_stats["grad_cosine_mean"] = self._apply_combined_gradients(replicas)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), p.max_grad_norm)
        self.optimizer.step()

        return {
            "loss": loss.item(), "policy_loss": pg_loss.mean().item(), "value_loss": v_loss.mean().item(),
            "entropy": entropy_mean.mean().item(), "extra_loss": float(extra_loss.detach()),
            "approx_kl": approx_kl.item(), "clip_fraction": clip_fraction.item(),
            "ratio_mean": ratio.mean().item(), "grad_norm": float(grad_norm), **extra_stats,
        }

    def _apply_combined_gradients(self, replicas: dict[str, Tensor]) -> float:
        """Combine the replicas' per-task gradients ``[M, D]`` with the method and add the result to
        the shared parameters' gradients (which hold any extra-loss gradient). Returns the mean
        pairwise cosine similarity of the task gradients (NaN for one task)."""
        shared = self.model.shared_parameters()
        names = list(replicas)
        per_task = torch.cat(
            [(replicas[n].grad if replicas[n].grad is not None else torch.zeros_like(replicas[n])).reshape(self.num_tasks, -1)
             for n in names],
            dim=1,
        )
        combined = self.method.combine_gradients(per_task)
        unit = per_task / per_task.norm(dim=1, keepdim=True).clamp_min(1e-12)
        cosine = unit @ unit.T
        off_diagonal = ~torch.eye(self.num_tasks, dtype=torch.bool, device=cosine.device)
        mean_cosine = cosine[off_diagonal].mean().item() if self.num_tasks > 1 else math.nan
        offset = 0
        for name in names:
            param = shared[name]
            piece = combined[offset: offset + param.numel()].view_as(param)
            offset += param.numel()
            param.grad = piece.clone() if param.grad is None else param.grad + piece
        return mean_cosine

    # ----------------------------------------------------------------------------------------
    def iterate(self) -> dict[str, float]:
        """One PPO iteration: anneal the learning rate, collect a rollout, update."""
        if self.ppo.anneal_lr:
            fraction = 1.0 - self.iteration / self.num_iterations
            self.optimizer.param_groups[0]["lr"] = fraction * self.ppo.learning_rate
        start = time.perf_counter()
        rollout = self.collect_rollout()
        self.method.begin_update(self.model, self.iteration / self.num_iterations)
        stats = self.update(rollout)
        self.method.end_update(self.model)
        elapsed = time.perf_counter() - start
        self.iteration += 1
        stats["sps"] = self.batch_per_task * self.num_tasks / elapsed
        stats["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return stats

    def pop_episodes(self) -> EpisodeLog:
        """Training episodes finished since the last call."""
        episodes, self.episodes = self.episodes, EpisodeLog.empty(self.num_tasks)
        return episodes

    def _tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, device=self.device, dtype=torch.float32)


def evaluate(model: ActorCritic, make_env: Callable[[int], MultiTaskVecEnv], episodes: int,
             device="cpu", strategy: str = "mean", seed: int = 0) -> EpisodeLog:
    """Deterministic (greedy) policy: one episode on each of ``episodes`` copies per task.
    ``make_env(envs_per_task)`` builds the evaluation env.

    ``strategy`` chooses the weights (:mod:`varshare.eval.strategies`): ``"mean"`` — the mean
    weights (``noise=None``); ``"sample-K"`` — K full weight draws per copy, made before the
    episode and held for all of it, acting greedily on the average of the K action distributions.
    ``seed`` seeds the weight draws (the env's seed is ``make_env``'s business)."""
    env = make_env(episodes)
    try:
        obs = torch.as_tensor(env.reset(), dtype=torch.float32, device=device)
        policy = EvalPolicy(model, strategy, episodes, seed=seed, device=device)
        finished = np.zeros((env.num_tasks, episodes), dtype=bool)
        log = EpisodeLog.empty(env.num_tasks)
        with torch.no_grad():
            while not finished.all():
                action = policy.act(obs)
                step = env.step(action.cpu().numpy())
                newly = step.done & ~finished
                for m, n in zip(*np.nonzero(newly)):
                    log.returns[m].append(float(step.episode_return[m, n]))
                    log.lengths[m].append(int(step.episode_length[m, n]))
                    log.successes[m].append(bool(step.episode_success[m, n]))
                finished |= step.done
                obs = torch.as_tensor(step.obs, dtype=torch.float32, device=device)
    finally:
        env.close()
    return log


def mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan
