"""Multi-task PPO, method-agnostic: every task's rollout and update run as one batched program.

Read top to bottom like CleanRL's ``ppo.py``; the differences are the task axis and the method hooks:

* Tensors are task-major: ``[M, T, N, ...]`` in the rollout, ``[M, B, ...]`` in minibatches (the same
  transition indices are drawn for every task, so each minibatch holds ``B`` examples per task).
* The actor and the critic are networks built by the sharing method
  (:meth:`Method.build_network`); the method adds its loss term over both
  (:meth:`Method.extra_loss`) and, where it wants per-task gradients of the shared parameters,
  combines them (:meth:`Method.combine_gradients`). PPO never branches on a method's name.
* Stochastic-weight methods: each rollout draws one weight sample for all of its transitions
  (``model.draw_noise(T·N)``: one ``ε`` per task, per-example parts such as Flipout's signs for
  every transition), stored with the rollout, so the update replays exactly the weights that chose
  each action. Old log-probabilities are then recomputed with the update's own arithmetic (same
  minibatch layout as the first minibatch), which makes the first minibatch's ratio exactly 1 and
  its approximate KL exactly 0. The largest difference between these and the rollout-time
  log-probabilities is logged (``logprob_replay_error``): it is float rounding only.
* Losses are per task (mean over the task's examples) and summed over tasks; advantages are
  normalised per task within each minibatch. Truncated episodes are bootstrapped by adding
  ``γ·V(final_obs)`` to the last reward; terminated ones are not.
* With ``ppo.normalize_obs`` every new observation first updates the per-task running statistics
  (:mod:`varshare.algos.obs_norm`), and the networks see it normalised with the statistics of
  that moment; the rollout stores what the networks saw (CleanRL's ``NormalizeObservation``).
* Per-task gradients of shared parameters come from one backward pass
  (:mod:`varshare.algos.per_task_gradients`).
* Frozen parameters (``requires_grad`` False, e.g. θ in leave-one-out residual adaptation) are left
  out of the optimizer and of the per-task-gradient path, so nothing ever writes them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from varshare.algos.agent import EpisodeLog, NonFiniteLossError
from varshare.algos.device_step import upload
from varshare.algos.obs_norm import RunningObsNorm
from varshare.algos.per_task_gradients import apply_combined_gradients, task_replicas
from varshare.config import ExperimentConfig, NetworkConfig
from varshare.envs.base import MultiTaskVecEnv
from varshare.methods.base import Method
from varshare.nn import (
    MultiTaskMLP,
    NetworkNoise,
    map_examples,
    select_examples,
    shared_parameters,
    slice_examples,
)


@dataclass(frozen=True)
class ActorCriticNoise:
    """One weight sample of both networks for a batch (None: that network is deterministic)."""

    actor: NetworkNoise | None
    critic: NetworkNoise | None

    def map_examples(self, fn) -> ActorCriticNoise:
        """A copy with ``fn`` applied to every per-example tensor of both networks."""
        return ActorCriticNoise(map_examples(self.actor, fn), map_examples(self.critic, fn))


@dataclass
class PolicyOutput:
    """Actor-critic outputs for ``[M, B]`` observations.

    Attributes:
        logits: ``[M, B, num_actions]`` (discrete) or action means ``[M, B, act_dim]`` (continuous).
        log_std: ``[M, B, act_dim]`` per-task log standard deviations (continuous only, else None).
        value: ``[M, B]`` state values.
    """

    logits: Tensor
    log_std: Tensor | None
    value: Tensor

    def log_prob(self, actions: Tensor) -> Tensor:
        """``[M, B]`` log-probabilities of ``actions`` (``[M, B]`` ints or ``[M, B, act_dim]``)."""
        if self.log_std is None:
            log_probs = torch.log_softmax(self.logits, dim=-1)
            return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        z = (actions - self.logits) * torch.exp(-self.log_std)
        return (-0.5 * z.square() - self.log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)

    def entropy(self) -> Tensor:
        """``[M, B]`` entropies of the action distributions (nats)."""
        if self.log_std is None:
            log_probs = torch.log_softmax(self.logits, dim=-1)
            return -(log_probs.exp() * log_probs).sum(dim=-1)
        return (self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(dim=-1)


class ActorCritic(nn.Module):
    """PPO's model: separate actor and critic networks, both laid out by the sharing method.

    Orthogonal init as in PPO implementations: √2 hidden, 0.01 policy head, 1 value head; a free
    per-task log-std for continuous actions. Implements :class:`~varshare.algos.agent.TrainedModel`.

    Args:
        method: the sharing method (builds both networks).
        obs_dim: observation size.
        action_dim: number of discrete actions, or the continuous action size.
        discrete: whether actions are discrete.
        network: hidden sizes and activation of both networks.
        obs_norm: per-task observation normaliser (None: the networks see raw observations).
    """

    def __init__(self, method: Method, obs_dim: int, action_dim: int, discrete: bool, network: NetworkConfig,
                 obs_norm: RunningObsNorm | None = None):
        super().__init__()
        self.num_tasks = method.num_tasks
        self.discrete = discrete
        hidden, activation = list(network.hidden_sizes), network.activation
        self.actor = method.build_network(obs_dim, action_dim, hidden, activation, head_gain=0.01)
        self.critic = method.build_network(obs_dim, 1, hidden, activation, head_gain=1.0)
        self.log_std = None if discrete else nn.Parameter(torch.zeros(self.num_tasks, action_dim))
        self.obs_norm = obs_norm

    def network_input(self, obs: Tensor) -> Tensor:
        """Env observations ``[M, N, obs_dim]`` → network input: normalised by the running per-task
        statistics (``ppo.normalize_obs``), else unchanged."""
        return obs if self.obs_norm is None else self.obs_norm(obs)

    def networks(self) -> dict[str, MultiTaskMLP]:
        return {"actor": self.actor, "critic": self.critic}

    def forward(self, obs: Tensor, noise: ActorCriticNoise | None = None) -> PolicyOutput:
        """``obs`` ``[M, B, obs_dim]`` → :class:`PolicyOutput`; ``noise=None`` uses mean weights."""
        logits = self.actor(obs, None if noise is None else noise.actor)
        value = self.critic(obs, None if noise is None else noise.critic).squeeze(-1)
        log_std = None if self.log_std is None else self.log_std.unsqueeze(1).expand_as(logits)
        return PolicyOutput(logits, log_std, value)

    def draw_noise(self, batch_size: int, generator: torch.Generator) -> ActorCriticNoise | None:
        """One weight sample of both networks for ``batch_size`` examples per task (None when both
        are deterministic)."""
        if not (self.actor.stochastic or self.critic.stochastic):
            return None
        return ActorCriticNoise(self.actor.draw_noise(batch_size, generator),
                                self.critic.draw_noise(batch_size, generator))

    def greedy_actions(self, actor_outputs: Tensor) -> Tensor:
        """``[M, N, K, out]`` → argmax of the mean softmax (discrete) or the mean action mean."""
        if self.discrete:
            return torch.softmax(actor_outputs, dim=-1).mean(dim=2).argmax(dim=-1)
        return actor_outputs.mean(dim=2)


@dataclass
class Rollout:
    """One rollout of ``T`` steps of ``N`` copies of ``M`` tasks; arrays ``[M, T, N, ...]``.

    ``obs`` are the network inputs (normalised if the model normalises); ``logprobs`` and
    ``values`` are the behaviour policy's; ``rewards`` already include the
    ``γ·V(final_obs)`` bootstrap of truncated episodes; ``episode_ended`` is 1 where an episode
    ended with that transition. ``noise`` is the weight sample that acted, with per-example parts
    for the ``T·N`` transitions in flattened order ``t·N + n`` (None: mean weights or a
    deterministic model); ``next_value`` ``[M, N]`` is the value of the observation after the last
    step. ``mean_weights``: the rollout acted with the mean weights by the method's choice.
    """

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    rewards: Tensor
    episode_ended: Tensor
    noise: ActorCriticNoise | None
    next_value: Tensor
    mean_weights: bool = False


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


def sample_actions(output: PolicyOutput, generator: torch.Generator) -> Tensor:
    """Draw actions ``[M, N]`` (or ``[M, N, act_dim]``) from the policy with ``generator``."""
    if output.log_std is None:
        probs = torch.softmax(output.logits, dim=-1)
        flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        return flat.reshape(probs.shape[:-1])
    noise = torch.randn(output.logits.shape, generator=generator, device=output.logits.device)
    return output.logits + output.log_std.exp() * noise


class PPO:
    """Multi-task PPO on a :class:`MultiTaskVecEnv` with a sharing :class:`Method` (the
    :class:`~varshare.algos.agent.Agent` protocol; one :meth:`iterate` = one rollout and update).

    Args:
        config: the experiment config (``ppo``, ``network`` and the method's section are read).
        method: the sharing method (builds the networks, adds its loss, combines gradients).
        env: the training environment (``M`` tasks × ``config.envs_per_task`` copies).
        seed: seeds the network init and the run's generator (actions, noise, minibatches).
        device: torch device.
        init_model: called with the freshly built model before the optimizer is created, e.g. to
            load pretrained weights and freeze some (``requires_grad_(False)``); the optimizer
            holds only the parameters that still require gradients.
    """

    progress_metrics = ("approx_kl", "clip_fraction")
    wall_clock_metrics = ("sps",)

    def __init__(self, config: ExperimentConfig, method: Method, env: MultiTaskVecEnv, seed: int, device="cpu",
                 init_model: Callable[[nn.Module], None] | None = None):
        self.config = config
        self.ppo = config.ppo
        self.method = method
        self.env = env
        self.device = torch.device(device)
        self.num_tasks = env.num_tasks
        self.num_envs = env.envs_per_task
        torch.manual_seed(seed)
        self.model = self.build_model(config, method, env).to(self.device)
        if init_model is not None:
            init_model(self.model)
        #: the shared parameters θ of both networks, by their names in the model (per-task gradients)
        self.shared = shared_parameters(self.model.networks())
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=self.ppo.learning_rate, eps=1e-5)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.batch_per_task = self.steps_per_iteration = self.ppo.num_steps * self.num_envs
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

    @staticmethod
    def build_model(config: ExperimentConfig, method: Method, env: MultiTaskVecEnv) -> ActorCritic:
        """The actor-critic for ``env``'s spaces with the method's layout."""
        space = env.single_action_space
        action_dim = space.n if env.is_discrete else space.shape[0]
        obs_norm = (RunningObsNorm(method.num_tasks, env.obs_dim, config.ppo.obs_clip)
                    if config.ppo.normalize_obs else None)
        return ActorCritic(method, env.obs_dim, int(action_dim), env.is_discrete, config.network, obs_norm)

    # ----------------------------------------------------------------------------------------
    # rollout
    def collect_rollout(self) -> Rollout:
        """Run ``num_steps`` steps of every copy with the current policy and one weight sample."""
        M, T, N = self.num_tasks, self.ppo.num_steps, self.num_envs
        model, gamma = self.model, self.ppo.gamma
        mean_weights = self.method.act_with_mean_weights
        # one weight sample for the rollout: T·N transitions, then N more for the value after it
        noise = None if mean_weights else model.draw_noise((T + 1) * N, self.generator)
        obs = torch.zeros((M, T, N, self.env.obs_dim), device=self.device)
        action_shape = () if self.env.is_discrete else self.env.single_action_space.shape
        actions = torch.zeros((M, T, N, *action_shape), device=self.device,
                              dtype=torch.long if self.env.is_discrete else torch.float32)
        logprobs, values, rewards, ended = (torch.zeros((M, T, N), device=self.device) for _ in range(4))
        with torch.no_grad():
            for t in range(T):
                step_noise = slice_examples(noise, t * N, (t + 1) * N)
                if model.obs_norm is not None:
                    model.obs_norm.update(self.next_obs)
                x = model.network_input(self.next_obs)
                output = model(x, step_noise)
                action = sample_actions(output, self.generator)
                obs[:, t] = x
                actions[:, t] = action
                logprobs[:, t] = output.log_prob(action)
                values[:, t] = output.value

                step = self.env.step(action.cpu().numpy())
                on_device = upload(step, self.device)
                reward = on_device.reward
                if (step.truncated & ~step.terminated).any():  # bootstrap time limits, not terminations
                    final_value = model(model.network_input(on_device.final_obs), step_noise).value
                    reward = reward + gamma * final_value * on_device.truncated * (1.0 - on_device.terminated)
                rewards[:, t] = reward
                ended[:, t] = torch.maximum(on_device.terminated, on_device.truncated)
                self.next_obs = on_device.obs
                self.episodes.record(step, step.done)
            next_value = model(model.network_input(self.next_obs), slice_examples(noise, T * N, (T + 1) * N)).value

        self.steps_per_task += T * N
        # the transitions' noise, contiguous: the update gathers it in a new order every epoch
        batch_noise = map_examples(noise, lambda t: t[:, :T * N].contiguous())
        return Rollout(obs, actions, logprobs, values, rewards, ended, batch_noise, next_value, mean_weights)

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
        # behaviour with mean weights: the update samples fresh noise; otherwise replay the rollout's
        noise = self.model.draw_noise(B, self.generator) if rollout.mean_weights else rollout.noise
        permutations = [torch.randperm(B, generator=self.generator, device=self.device) for _ in range(p.update_epochs)]

        def minibatches(perm: Tensor):
            """The batch and its noise in ``perm``'s order, gathered once per epoch and cut into
            consecutive minibatches."""
            epoch_batch = {k: v.index_select(1, perm) for k, v in batch.items()}
            epoch_noise = select_examples(noise, perm)
            for start in range(0, B, self.minibatch_per_task):
                stop = start + self.minibatch_per_task
                yield {k: v[:, start:stop] for k, v in epoch_batch.items()}, slice_examples(epoch_noise, start, stop)

        replayed = self._replay_logprobs(minibatches(permutations[0]), rollout.mean_weights)  # epoch-0 order
        old_logprobs = torch.empty_like(replayed)
        old_logprobs[:, permutations[0]] = replayed  # back to rollout order
        replay_error = (old_logprobs - flat(rollout.logprobs)).abs().max().item()
        batch["old_logprobs"] = old_logprobs

        stats: dict[str, list[float]] = {}
        for perm in permutations:
            for mb, mb_noise in minibatches(perm):
                for key, value in self._minibatch_step(mb, mb_noise).items():
                    stats.setdefault(key, []).append(value)

        values = {key: float(np.mean(v)) for key, v in stats.items()}
        values["ratio_first_minibatch"] = stats["ratio_mean"][0]
        values["approx_kl_first_minibatch"] = stats["approx_kl"][0]
        values["logprob_replay_error"] = replay_error
        y_pred, y_true = batch["values"].flatten(), batch["returns"].flatten()
        var_y = torch.var(y_true)
        values["explained_variance"] = float("nan") if var_y == 0 else float(1 - torch.var(y_true - y_pred) / var_y)
        values.update(self.method.diagnostics(self.model.networks()))
        return values

    def _replicas(self) -> dict[str, Tensor] | None:
        """Task-replicated shared parameters for the method's per-task gradients (None: not needed)."""
        if not self.method.per_task_gradients:
            return None
        return task_replicas(self.shared, self.num_tasks)

    def _forward(self, obs: Tensor, noise: ActorCriticNoise | None, replicas: dict[str, Tensor] | None):
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
            replicas = self._replicas()
            for mb, noise in first_epoch_minibatches:
                output = self._forward(mb["obs"], None if mean_weights else noise, replicas)
                old.append(output.log_prob(mb["actions"]))
        return torch.cat(old, dim=1)

    def _minibatch_step(self, mb: dict[str, Tensor], noise: ActorCriticNoise | None) -> dict[str, float]:
        """One clipped-surrogate step on minibatch ``mb`` (``[M, b, ...]`` tensors, the behaviour
        policy's ``old_logprobs`` among them) with weight noise ``noise``; returns its statistics."""
        p = self.ppo
        replicas = self._replicas()
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
        extra_loss, extra_stats = self.method.extra_loss(self.model.networks(), self.batch_per_task)
        loss = rl_loss + extra_loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss at iteration {self.iteration} (rl_loss={rl_loss.item()}, "
                f"extra_loss={float(torch.as_tensor(extra_loss).detach())}); stopping"
            )

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        extra_stats = dict(extra_stats)
        if replicas is not None:
            extra_stats["grad_cosine_mean"] = apply_combined_gradients(self.shared, replicas,
                                                                       self.method.combine_gradients)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), p.max_grad_norm)
        self.optimizer.step()

        return {
            "loss": loss.item(), "policy_loss": pg_loss.mean().item(), "value_loss": v_loss.mean().item(),
            "entropy": entropy_mean.mean().item(), "extra_loss": float(extra_loss.detach()),
            "approx_kl": approx_kl.item(), "clip_fraction": clip_fraction.item(),
            "ratio_mean": ratio.mean().item(), "grad_norm": float(grad_norm), **extra_stats,
        }

    # ----------------------------------------------------------------------------------------
    # the Agent protocol
    def iterate(self) -> dict[str, float]:
        """One PPO iteration: anneal the learning rate, collect a rollout, update."""
        if self.ppo.anneal_lr:
            fraction = 1.0 - self.iteration / self.num_iterations
            self.optimizer.param_groups[0]["lr"] = fraction * self.ppo.learning_rate
        start = time.perf_counter()
        rollout = self.collect_rollout()
        networks = self.model.networks()
        self.method.begin_update(networks, self.iteration / self.num_iterations)
        stats = self.update(rollout)
        self.method.end_update(networks)
        elapsed = time.perf_counter() - start
        self.iteration += 1
        stats["sps"] = self.batch_per_task * self.num_tasks / elapsed
        stats["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return stats

    def task_statistics(self) -> dict[str, list[float]]:
        """PPO logs its update statistics over all tasks only."""
        return {}

    def pop_episodes(self) -> EpisodeLog:
        """Training episodes finished since the last call."""
        episodes, self.episodes = self.episodes, EpisodeLog.empty(self.num_tasks)
        return episodes

    def reset_observations(self, obs: np.ndarray) -> None:
        self.next_obs = self._tensor(obs)

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(), "method": self.method.state_dict(),
            "iteration": self.iteration, "steps_per_task": self.steps_per_task, "next_obs": self.next_obs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.method.load_state_dict(state["method"])
        self.iteration, self.steps_per_task = state["iteration"], state["steps_per_task"]
        self.next_obs = state["next_obs"].to(self.device)

    def _tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, device=self.device, dtype=torch.float32)


AGENT = PPO
