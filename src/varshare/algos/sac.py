"""Multi-task SAC, method-agnostic: every task's acting and every gradient step run as one batched
program (SCIENCE.md "SAC"; multi-task multi-head SAC is the MT10 reference).

Read top to bottom like CleanRL's ``sac_continuous_action.py`` / ``sac_atari.py``; the differences
are the task axis and the method hooks:

* Tensors are task-major: observations ``[M, N, obs_dim]`` when acting, batches ``[M, B, ...]`` in
  gradient steps (``B = batch_per_task`` transitions sampled from *each* task's replay buffer,
  :mod:`varshare.algos.replay`). Losses are per task (mean over the task's batch) and summed over
  tasks, so task ``m``'s temperature and head see only task ``m``'s data.
* The actor, the twin critics ``Q1``, ``Q2`` and their Polyak targets are networks built by the
  sharing method (:meth:`Method.build_network`); the targets are copies of every parameter (θ, μ
  and ρ alike), updated by ``target ← τ·online + (1 − τ)·target``. Each task has its own
  temperature ``α_m = exp(log α_m)`` and target entropy ``H̄``.
* **Discrete actions** (Christodoulou 2019; CartPole-10, LunarLander-20): the actor outputs logits,
  the critics one value per action, and every expectation over actions is exact:
  ``V̄(s') = Σ_a π(a|s') (min_j Q̄_j(s', a) − α_m log π(a|s'))``; actor loss
  ``Σ_a π(a|s) (α_m log π(a|s) − min_j Q_j(s, a))``; temperature loss
  ``−log α_m · Σ_a π(a|s) (log π(a|s) + H̄)``, ``H̄ = target_entropy_ratio · log|A|``.
* **Continuous actions** (MT10): the actor outputs ``[mean, log_std]`` (log-std clamped); actions
  are ``a = bias + scale · tanh(u)``, ``u ~ N(mean, std²)``, with the tanh log-det correction in its
  stable form (:func:`tanh_gaussian_log_prob`); the critics read ``[obs, a]``. Target
  ``y = r + γ (1 − terminated) (min_j Q̄_j(s', a') − α_m log π(a'|s'))``, ``a' ~ π(·|s')``; actor
  loss ``α_m log π(a|s) − min_j Q_j(s, a)``; temperature loss ``−log α_m (log π(a|s) + H̄)``,
  ``H̄ = target_entropy_per_dim · |A|``.
* Truncated episodes bootstrap from their final observation (``next_obs`` in the buffer);
  terminated ones do not (``terminated`` zeroes the bootstrap).
* **Stochastic-weight methods**: fresh weight noise for every gradient step — one draw for the
  actor at ``s'`` (the target's next actions), one for each critic (shared by the critic loss and
  the actor loss of that step), one for the actor at ``s`` — per example (Flipout) as in PPO;
  acting draws fresh noise at every env step (unless the method acts with its mean weights); the
  targets use their mean weights (``sac.sample_target_weights`` draws them). The method's extra
  loss is added to the critic loss (over ``Q1``, ``Q2``) and to the actor loss (over the actor)
  with ``N_data`` = the transitions in each task's replay buffer (capped at capacity).
* **Per-task gradients** (PCGrad, CAGrad): the shared parameters of the critics get their
  combined per-task gradients of the critic loss, the actor's of the actor loss, each from one
  backward pass (:mod:`varshare.algos.per_task_gradients`).
* **Update phases**: there is no rollout, so the method's ``begin_update`` / ``end_update`` hooks
  run around every ``sac.method_phase_steps`` gradient steps (Reptile re-centring, the trust
  region's snapshot, KL annealing's β).
* Warm-up: uniformly random actions and no gradient steps for the first ``sac.learning_starts``
  env steps per task; then every ``sac.train_freq`` vector steps, ``sac.gradient_steps`` gradient
  steps. Three Adam optimisers (actor, critics, temperatures); gradient-norm clipping of the actor's
  and of the critics' gradients (a global norm, as the MT10 reference clips: it scales every task's
  step by one common factor, the only way one task's data reaches another task's own parameters);
  the critics' gradients are not computed in the actor step.
* Frozen parameters (``requires_grad`` False: θ in leave-one-out's residual regime) stay out of the
  optimisers and the per-task-gradient path; the targets are synchronised after ``init_model``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from varshare.algos.agent import EpisodeLog, NonFiniteLossError
from varshare.algos.device_step import upload
from varshare.algos.per_task_gradients import apply_combined_gradients, task_replicas
from varshare.algos.replay import MultiTaskReplayBuffer, TransitionBatch
from varshare.config import ExperimentConfig, SACConfig
from varshare.envs.base import MultiTaskVecEnv
from varshare.methods.base import Method
from varshare.nn import MultiTaskMLP, NetworkNoise


# ------------------------------------------------------------------------------------------------
# the policy's distributions and the losses (pure functions of tensors; tested against
# independent computations)
def tanh_gaussian_log_prob(u: Tensor, mean: Tensor, log_std: Tensor, scale: Tensor) -> Tensor:
    """``log π(a)`` of ``a = bias + scale · tanh(u)`` with ``u ~ N(mean, exp(log_std)²)``, summed over
    the last (action) axis: ``log N(u) − Σ log(scale · (1 − tanh² u))``, with the stable identity
    ``log(1 − tanh² u) = 2 (log 2 − u − softplus(−2u))``."""
    z = (u - mean) * torch.exp(-log_std)
    gaussian = -0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u)) + torch.log(scale)
    return (gaussian - log_det).sum(dim=-1)


def discrete_soft_value(logits: Tensor, q1: Tensor, q2: Tensor, alpha: Tensor) -> Tensor:
    """``V(s) = Σ_a π(a|s) (min(Q1, Q2)(s, a) − α_m log π(a|s))``: ``logits``, ``q1``, ``q2``
    ``[M, B, A]``, ``alpha`` ``[M]`` → ``[M, B]``."""
    log_pi = torch.log_softmax(logits, dim=-1)
    return (log_pi.exp() * (torch.minimum(q1, q2) - alpha[:, None, None] * log_pi)).sum(dim=-1)


def discrete_actor_loss(logits: Tensor, q1: Tensor, q2: Tensor, alpha: Tensor) -> Tensor:
    """``E_s Σ_a π(a|s) (α_m log π(a|s) − min(Q1, Q2)(s, a))`` per task ``[M]`` (mean over ``B``);
    the Q values and ``alpha`` are constants here."""
    return -discrete_soft_value(logits, q1, q2, alpha).mean(dim=1)


def temperature_loss(log_alpha: Tensor, expected_log_pi: Tensor, target_entropy: float) -> Tensor:
    """``−log α_m · E[log π + H̄]`` per task ``[M]``: ``expected_log_pi`` ``[M, B]`` is ``log π(a|s)``
    of a sampled action (continuous) or ``Σ_a π log π`` (discrete), a constant here."""
    return -log_alpha * (expected_log_pi.detach() + target_entropy).mean(dim=1)


def soft_td_target(rewards: Tensor, terminated: Tensor, next_value: Tensor, gamma: float) -> Tensor:
    """``y = r + γ (1 − terminated) V̄(s')``, all ``[M, B]``."""
    return rewards + gamma * (1.0 - terminated) * next_value


def polyak_update_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """In place: ``target ← τ · online + (1 − τ) · target`` for every parameter (θ, μ, ρ alike)."""
    with torch.no_grad():
        for target_param, param in zip(target.parameters(), online.parameters(), strict=True):
            target_param.lerp_(param, tau)


@contextmanager
def gradients_off(parameters: Iterable[nn.Parameter]):
    """Turn ``requires_grad`` off for ``parameters`` inside the block and restore each flag after."""
    parameters = list(parameters)
    flags = [p.requires_grad for p in parameters]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(parameters, flags):
            p.requires_grad_(flag)


# ------------------------------------------------------------------------------------------------
# the model
@dataclass(frozen=True)
class CriticNoise:
    """One weight sample of each critic for a batch (None: that critic is deterministic)."""

    q1: NetworkNoise | None
    q2: NetworkNoise | None


class SACModel(nn.Module):
    """SAC's networks, all laid out by the sharing method: the actor, twin critics, their targets,
    and the per-task log-temperatures. Implements :class:`~varshare.algos.agent.TrainedModel`.

    Init: orthogonal (√2 hidden), head gain 0.01 for the actor (a near-uniform / near-zero-mean
    first policy, as in PPO) and 1 for the critics.

    Args:
        method: the sharing method (builds the actor and both critics).
        obs_dim: observation size.
        action_space: a ``gymnasium`` ``Discrete`` (``n`` actions) or ``Box`` (bounded) space.
        config: the experiment config (``network`` and ``sac`` are read).
    """

    def __init__(self, method: Method, obs_dim: int, action_space, config: ExperimentConfig):
        super().__init__()
        sac, network = config.sac, config.network
        self.num_tasks = method.num_tasks
        self.discrete = hasattr(action_space, "n")
        hidden, activation = list(network.hidden_sizes), network.activation
        if self.discrete:
            self.action_dim = int(action_space.n)
            actor_out, q_in, q_out = self.action_dim, obs_dim, self.action_dim
        else:
            self.action_dim = int(action_space.shape[0])
            actor_out, q_in, q_out = 2 * self.action_dim, obs_dim + self.action_dim, 1
            low = torch.as_tensor(action_space.low, dtype=torch.float32)
            high = torch.as_tensor(action_space.high, dtype=torch.float32)
            self.register_buffer("action_scale", (high - low) / 2)
            self.register_buffer("action_bias", (high + low) / 2)
        self.log_std_bounds = (sac.log_std_min, sac.log_std_max)
        self.actor = method.build_network(obs_dim, actor_out, hidden, activation, head_gain=0.01)
        self.q1 = method.build_network(q_in, q_out, hidden, activation, head_gain=1.0)
        self.q2 = method.build_network(q_in, q_out, hidden, activation, head_gain=1.0)
        self.q1_target = copy.deepcopy(self.q1).requires_grad_(False)
        self.q2_target = copy.deepcopy(self.q2).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((self.num_tasks,), float(sac.init_log_alpha)))
        self.target_entropy = (sac.target_entropy_ratio * math.log(self.action_dim) if self.discrete
                               else sac.target_entropy_per_dim * self.action_dim)

    def networks(self) -> dict[str, MultiTaskMLP]:
        """The trained networks the method shapes (the targets follow them by Polyak averaging)."""
        return {"actor": self.actor, "q1": self.q1, "q2": self.q2}

    def critics(self) -> dict[str, MultiTaskMLP]:
        return {"q1": self.q1, "q2": self.q2}

    def sync_targets(self) -> None:
        """Targets ← online critics, exactly."""
        polyak_update_(self.q1_target, self.q1, 1.0)
        polyak_update_(self.q2_target, self.q2, 1.0)

    def split_actor_output(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Continuous actor outputs ``[..., 2·act_dim]`` → ``(mean, clamped log_std)``."""
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(*self.log_std_bounds)

    def sample_continuous(self, out: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Reparameterised ``(action [..., act_dim], log π(action) [...])`` from actor outputs."""
        mean, log_std = self.split_actor_output(out)
        u = mean + log_std.exp() * torch.randn(mean.shape, generator=generator, device=mean.device)
        action = self.action_bias + self.action_scale * torch.tanh(u)
        return action, tanh_gaussian_log_prob(u, mean, log_std, self.action_scale)

    def q_values(self, critic: MultiTaskMLP, obs: Tensor, actions: Tensor | None, noise: NetworkNoise | None,
                 params: dict[str, Tensor] | None = None) -> Tensor:
        """``[M, B, A]`` (discrete: every action) or ``[M, B]`` (continuous: of ``actions``);
        ``params`` replaces parameters of ``critic`` (task replicas for per-task gradients)."""
        x = obs if self.discrete else torch.cat([obs, actions], dim=-1)
        out = critic(x, noise) if params is None else functional_call(critic, params, (x, noise))
        return out if self.discrete else out.squeeze(-1)

    def network_input(self, obs: Tensor) -> Tensor:
        """The networks see raw observations."""
        return obs

    def greedy_actions(self, actor_outputs: Tensor) -> Tensor:
        """``[M, N, K, out]`` → argmax of the mean softmax (discrete) or the mean over the ``K``
        draws of each draw's mode ``bias + scale · tanh(mean)`` (continuous)."""
        if self.discrete:
            return torch.softmax(actor_outputs, dim=-1).mean(dim=2).argmax(dim=-1)
        mean, _ = self.split_actor_output(actor_outputs)
        return (self.action_bias + self.action_scale * torch.tanh(mean)).mean(dim=2)


# ------------------------------------------------------------------------------------------------
# the agent
class SAC:
    """Multi-task SAC on a :class:`MultiTaskVecEnv` with a sharing :class:`Method` (the
    :class:`~varshare.algos.agent.Agent` protocol; one :meth:`iterate` = ``sac.steps_per_iteration``
    env steps per task with their gradient steps).

    Args:
        config: the experiment config (``sac``, ``network`` and the method's section are read).
        method: the sharing method (builds the networks, adds its loss, combines gradients).
        env: the training environment (``M`` tasks × ``config.envs_per_task`` copies).
        seed: seeds the network init and the run's generator (actions, noise, replay sampling).
        device: torch device.
        init_model: called with the freshly built model before the optimisers are created (see
            :class:`~varshare.algos.agent.Agent`); the targets are synchronised after it.
    """

    progress_metrics = ("alpha", "q1_mean", "critic_loss", "entropy")
    wall_clock_metrics = ("sps", "gradient_steps_per_second")

    def __init__(self, config: ExperimentConfig, method: Method, env: MultiTaskVecEnv, seed: int, device="cpu",
                 init_model: Callable[[nn.Module], None] | None = None):
        self.config = config
        self.sac: SACConfig = config.sac
        self.method = method
        self.env = env
        self.device = torch.device(device)
        self.num_tasks, self.num_envs = env.num_tasks, env.envs_per_task
        torch.manual_seed(seed)
        self.model = self.build_model(config, method, env).to(self.device)
        if init_model is not None:
            init_model(self.model)
        self.model.sync_targets()
        model = self.model
        self.actor_params = [p for p in model.actor.parameters() if p.requires_grad]
        self.critic_params = [p for net in model.critics().values() for p in net.parameters() if p.requires_grad]
        self.actor_optimizer = torch.optim.Adam(self.actor_params, lr=self.sac.policy_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic_params, lr=self.sac.q_lr)
        self.alpha_optimizer = torch.optim.Adam([model.log_alpha], lr=self.sac.alpha_lr)
        #: shared parameters θ per loss, by name (per-task gradients of gradient-combining methods)
        self.actor_shared = model.actor.shared_parameters()
        self.critic_shared = {f"{name}.{param_name}": param for name, net in model.critics().items()
                              for param_name, param in net.shared_parameters().items()}
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        action_shape = () if env.is_discrete else tuple(env.single_action_space.shape)
        self.buffer = MultiTaskReplayBuffer(self.num_tasks, self.sac.buffer_size, env.obs_dim, action_shape,
                                            env.is_discrete, self.device)
        self.steps_per_iteration = self.sac.steps_per_iteration
        self.vector_steps_per_iteration = self.steps_per_iteration // self.num_envs
        self.num_iterations = max(1, config.total_steps_per_task // self.steps_per_iteration)
        self.iteration = 0
        self.steps_per_task = 0
        self.gradient_steps_done = 0
        self.last_task_stats: dict[str, list[float]] = {}
        self.episodes = EpisodeLog.empty(self.num_tasks)
        self.next_obs = self._tensor(env.reset())

    @staticmethod
    def build_model(config: ExperimentConfig, method: Method, env: MultiTaskVecEnv) -> SACModel:
        """SAC's networks for ``env``'s spaces with the method's layout."""
        return SACModel(method, env.obs_dim, env.single_action_space, config)

    # ----------------------------------------------------------------------------------------
    # acting
    def act(self, obs: Tensor) -> Tensor:
        """Actions ``[M, N]`` (discrete) or ``[M, N, act_dim]`` for ``obs`` ``[M, N, obs_dim]``: uniformly
        random during warm-up, else sampled from the policy with a fresh weight sample."""
        model, g = self.model, self.generator
        M, N = obs.shape[:2]
        if self.steps_per_task < self.sac.learning_starts:
            if model.discrete:
                return torch.randint(model.action_dim, (M, N), generator=g, device=self.device)
            uniform = torch.rand((M, N, model.action_dim), generator=g, device=self.device)
            return model.action_bias + model.action_scale * (2 * uniform - 1)
        noise = None if self.method.act_with_mean_weights else model.actor.draw_noise(N, g)
        out = model.actor(obs, noise)
        if model.discrete:
            probs = torch.softmax(out, dim=-1)
            return torch.multinomial(probs.reshape(M * N, -1), 1, generator=g).view(M, N)
        return model.sample_continuous(out, g)[0]

    @torch.no_grad()
    def env_step(self) -> None:
        """One vector step: act, step every copy, store ``N`` transitions per task."""
        obs = self.next_obs
        actions = self.act(obs)
        step = self.env.step(actions.cpu().numpy())
        on_device = upload(step, self.device)
        # final_obs is the successor of every transition (it equals obs where no episode ended)
        self.buffer.add(obs, actions, on_device.reward, on_device.final_obs, on_device.terminated)
        self.episodes.record(step, step.done)
        self.next_obs = on_device.obs
        self.steps_per_task += self.num_envs

    # ----------------------------------------------------------------------------------------
    # one gradient step
    def _replicas(self, shared: dict[str, nn.Parameter]) -> dict[str, Tensor] | None:
        return task_replicas(shared, self.num_tasks) if self.method.per_task_gradients else None

    def _actor_forward(self, obs: Tensor, noise: NetworkNoise | None, replicas: dict[str, Tensor] | None) -> Tensor:
        actor = self.model.actor
        return actor(obs, noise) if replicas is None else functional_call(actor, replicas, (obs, noise))

    def _target_value(self, batch: TransitionBatch, alpha: Tensor) -> Tensor:
        """``V̄(s')`` ``[M, B]`` under the target critics and the current policy (no gradients)."""
        model, g, B = self.model, self.generator, batch.obs.shape[1]
        next_out = model.actor(batch.next_obs, model.actor.draw_noise(B, g))
        sample = self.sac.sample_target_weights
        noise = [net.draw_noise(B, g) if sample else None for net in (model.q1_target, model.q2_target)]
        if model.discrete:
            q1 = model.q_values(model.q1_target, batch.next_obs, None, noise[0])
            q2 = model.q_values(model.q2_target, batch.next_obs, None, noise[1])
            return discrete_soft_value(next_out, q1, q2, alpha)
        next_actions, next_log_pi = model.sample_continuous(next_out, g)
        q1 = model.q_values(model.q1_target, batch.next_obs, next_actions, noise[0])
        q2 = model.q_values(model.q2_target, batch.next_obs, next_actions, noise[1])
        return torch.minimum(q1, q2) - alpha[:, None] * next_log_pi

    def _minimise(self, what: str, per_task: Tensor, networks: dict[str, MultiTaskMLP],
                  optimizer: torch.optim.Optimizer, params: list[nn.Parameter], shared: dict[str, nn.Parameter],
                  replicas: dict[str, Tensor] | None) -> dict:
        """One clipped ``optimizer`` step on the summed per-task loss ``per_task`` ``[M]`` plus the
        method's extra loss over ``networks`` (N_data = the transitions per task in the buffer);
        with ``replicas``, the per-task gradients of ``shared`` are combined by the method. Returns
        the step's scalar statistics, prefixed ``<what>_``."""
        extra, extra_stats = self.method.extra_loss(networks, self.buffer.size)
        loss = per_task.sum() + extra
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite {what} loss at gradient step {self.gradient_steps_done} "
                                     f"(iteration {self.iteration}); stopping")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats = {f"{what}_{k}": v for k, v in extra_stats.items()}
        if replicas is not None:
            stats[f"{what}_grad_cosine_mean"] = apply_combined_gradients(shared, replicas,
                                                                         self.method.combine_gradients)
        stats[f"{what}_grad_norm"] = torch.nn.utils.clip_grad_norm_(params, self.sac.max_grad_norm)
        optimizer.step()
        stats[f"{what}_extra_loss"] = extra.detach()
        return stats

    def _critic_step(self, batch: TransitionBatch, alpha: Tensor, noise: CriticNoise) -> dict:
        """Soft Bellman regression of both critics; returns per-task and scalar statistics."""
        model = self.model
        with torch.no_grad():
            target = soft_td_target(batch.rewards, batch.terminated, self._target_value(batch, alpha), self.sac.gamma)
        replicas = self._replicas(self.critic_shared)
        q = []
        for name, critic, critic_noise in (("q1", model.q1, noise.q1), ("q2", model.q2, noise.q2)):
            params = None if replicas is None else {k.split(".", 1)[1]: v for k, v in replicas.items()
                                                    if k.startswith(name + ".")}
            values = model.q_values(critic, batch.obs, batch.actions, critic_noise, params)
            q.append(values.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1) if model.discrete else values)
        per_task = (q[0] - target).square().mean(dim=1) + (q[1] - target).square().mean(dim=1)
        stats = self._minimise("critic", per_task, model.critics(), self.critic_optimizer, self.critic_params,
                               self.critic_shared, replicas)
        return {"task": {"critic_loss": per_task.detach(), "q1_mean": q[0].detach().mean(dim=1),
                         "q2_mean": q[1].detach().mean(dim=1), "target_q_mean": target.mean(dim=1)},
                "all": stats}

    def _actor_and_temperature_step(self, batch: TransitionBatch, alpha: Tensor, noise: CriticNoise) -> dict:
        """Policy improvement against the (just updated) critics, then the temperatures."""
        model, g, B = self.model, self.generator, batch.obs.shape[1]
        replicas = self._replicas(self.actor_shared)
        out = self._actor_forward(batch.obs, model.actor.draw_noise(B, g), replicas)
        if model.discrete:
            with torch.no_grad():  # the critics do not depend on the policy's parameters here
                q1 = model.q_values(model.q1, batch.obs, None, noise.q1)
                q2 = model.q_values(model.q2, batch.obs, None, noise.q2)
            per_task = discrete_actor_loss(out, q1, q2, alpha)
            log_pi = torch.log_softmax(out, dim=-1)
            expected_log_pi = (log_pi.exp() * log_pi).sum(dim=-1)  # [M, B]: −entropy
        else:
            actions, expected_log_pi = model.sample_continuous(out, g)
            with gradients_off(self.critic_params):  # gradients reach the actions, not the critics
                q1 = model.q_values(model.q1, batch.obs, actions, noise.q1)
                q2 = model.q_values(model.q2, batch.obs, actions, noise.q2)
            per_task = (alpha[:, None] * expected_log_pi - torch.minimum(q1, q2)).mean(dim=1)
        stats = self._minimise("actor", per_task, {"actor": model.actor}, self.actor_optimizer, self.actor_params,
                               self.actor_shared, replicas)

        alpha_per_task = temperature_loss(model.log_alpha, expected_log_pi, model.target_entropy)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        alpha_per_task.sum().backward()
        self.alpha_optimizer.step()
        entropy = -expected_log_pi.detach().mean(dim=1)
        return {"task": {"actor_loss": per_task.detach(), "entropy": entropy, "alpha_loss": alpha_per_task.detach()},
                "all": stats}

    def gradient_step(self) -> dict:
        """One SAC gradient step on a balanced batch; per-task ``[M]`` and scalar statistics."""
        sac, model = self.sac, self.model
        phase = sac.method_phase_steps
        networks = model.networks()
        if self.gradient_steps_done % phase == 0:
            self.method.begin_update(networks, self.steps_per_task / self.config.total_steps_per_task)
        batch = self.buffer.sample(sac.batch_per_task, self.generator)
        alpha = model.log_alpha.detach().exp()
        B = sac.batch_per_task
        noise = CriticNoise(model.q1.draw_noise(B, self.generator), model.q2.draw_noise(B, self.generator))
        critic = self._critic_step(batch, alpha, noise)
        actor = self._actor_and_temperature_step(batch, alpha, noise)
        self.gradient_steps_done += 1
        if self.gradient_steps_done % sac.target_update_interval == 0:
            polyak_update_(model.q1_target, model.q1, sac.tau)
            polyak_update_(model.q2_target, model.q2, sac.tau)
        if self.gradient_steps_done % phase == 0:
            self.method.end_update(networks)
        return {"task": {**critic["task"], **actor["task"]}, "all": {**critic["all"], **actor["all"]}}

    # ----------------------------------------------------------------------------------------
    # the Agent protocol
    def iterate(self) -> dict[str, float]:
        """``steps_per_iteration`` env steps per task, with a gradient phase every ``train_freq``
        vector steps once the warm-up is over. Statistics are means over the iteration's gradient
        steps (none during warm-up); per-task ones are kept for :meth:`task_statistics`."""
        sac = self.sac
        start = time.perf_counter()
        # sums stay on the device: one copy to the host per iteration, not one per statistic and step
        task_sums: dict[str, Tensor] = {}
        scalar_sums: dict[str, Tensor] = {}
        steps = 0
        for _ in range(self.vector_steps_per_iteration):
            self.env_step()
            vector_steps = self.steps_per_task // self.num_envs
            if self.steps_per_task < sac.learning_starts or vector_steps % sac.train_freq:
                continue
            for _ in range(sac.gradient_steps):
                stats = self.gradient_step()
                steps += 1
                for key, value in stats["task"].items():
                    task_sums[key] = task_sums[key] + value if key in task_sums else value.clone()
                for key, value in stats["all"].items():
                    value = torch.as_tensor(value, dtype=torch.float32, device=self.device).detach()
                    scalar_sums[key] = scalar_sums[key] + value if key in scalar_sums else value
        self.iteration += 1
        elapsed = time.perf_counter() - start
        alpha = self.model.log_alpha.detach().exp()
        self.last_task_stats = {"alpha": alpha.tolist(),
                                **{key: (value / steps).tolist() for key, value in task_sums.items()}}
        stats = {"sps": self.steps_per_iteration * self.num_tasks / elapsed,
                 "gradient_steps_per_second": steps / elapsed,
                 "buffer_size": float(self.buffer.size), "gradient_steps": float(self.gradient_steps_done),
                 "alpha": alpha.mean().item()}
        if steps:
            means = torch.stack(list(scalar_sums.values())).div(steps).tolist() if scalar_sums else []
            stats.update(zip(scalar_sums, means))
            stats.update({key: sum(values) / len(values) for key, values in self.last_task_stats.items()
                          if key != "alpha"})
            stats.update(self.method.diagnostics(self.model.networks()))
        return stats

    def task_statistics(self) -> dict[str, list[float]]:
        """Per-task statistics of the last iteration (``M`` values each): ``alpha`` at its end; means
        over its gradient steps of ``critic_loss``, ``q1_mean``, ``q2_mean``, ``target_q_mean``,
        ``actor_loss``, ``entropy``, ``alpha_loss`` (absent during warm-up)."""
        return self.last_task_stats

    def pop_episodes(self) -> EpisodeLog:
        episodes, self.episodes = self.episodes, EpisodeLog.empty(self.num_tasks)
        return episodes

    def reset_observations(self, obs: np.ndarray) -> None:
        self.next_obs = self._tensor(obs)

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(), "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(), "generator": self.generator.get_state(),
            "method": self.method.state_dict(), "buffer": self.buffer.state_dict(), "iteration": self.iteration,
            "steps_per_task": self.steps_per_task,
            "gradient_steps_done": self.gradient_steps_done, "next_obs": self.next_obs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.generator.set_state(state["generator"])
        self.method.load_state_dict(state["method"])
        self.buffer.load_state_dict(state["buffer"])
        self.iteration, self.steps_per_task = state["iteration"], state["steps_per_task"]
        self.gradient_steps_done = state["gradient_steps_done"]
        self.next_obs = state["next_obs"].to(self.device)

    def _tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, device=self.device, dtype=torch.float32)


AGENT = SAC
