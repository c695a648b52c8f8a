"""Stepping many per-copy simulator objects (Box2D, MuJoCo) as one multi-task vector env.

Families whose physics lives in a per-environment simulator object cannot be written as one array
program like CartPole; instead every one of the ``M × N`` copies is a gymnasium env. This module
is the single mechanism all such families share:

* :class:`EnvChunk` owns a contiguous slice of the copies (built from picklable env factories)
  and steps it with same-step auto-reset, returning flat, stacked numpy arrays.
* :class:`SyncRunner` runs one chunk holding every copy in this process; :class:`AsyncRunner`
  splits the copies into contiguous chunks, one worker process per chunk, talking over pipes.
* :class:`GymBackedVecEnv` is the :class:`~varshare.envs.base.MultiTaskVecEnv` on top of a runner:
  a family only says how to build one copy (:meth:`GymBackedVecEnv.env_factory`).

Seeding: copy ``n`` of task ``m`` is reset with the integer seed
``SeedSequence(seed, spawn_key=(m, n)).generate_state(1, uint64)[0]`` (see :func:`copy_seeds`), at
every :meth:`~varshare.envs.base.MultiTaskVecEnv.reset`. Auto-resets after a finished episode do
*not* reseed, so each copy continues its own ``np_random`` stream. A copy's stream depends only
on ``(seed, m, n)``, never on which process steps it, so sync and async runs of the same seed and
actions produce identical trajectories.

Per-step success is read from ``info["success"]`` (absent means ``False``); families that do not
report it natively add it with a wrapper.
"""

from __future__ import annotations

import abc
import multiprocessing as mp
import os
import signal
import traceback
from dataclasses import fields
from multiprocessing.connection import Connection
from typing import Any, Callable, Literal, Sequence

import gymnasium as gym
import numpy as np

from varshare.envs.base import MultiTaskVecEnv, RawStep
from varshare.envs.specs import TaskSpec

#: Builds one copy; must be picklable (a module-level function or a ``functools.partial`` of one)
#: because async workers call it in their own process.
EnvFactory = Callable[[], gym.Env]

_CLOSE_TIMEOUT_S = 10.0


def copy_seeds(seed: int, num_tasks: int, envs_per_task: int) -> list[int]:
    """Reset seeds of all copies, flat in task-major order (index ``m * N + n``).

    Seed of copy ``n`` of task ``m``: the first uint64 word of ``SeedSequence(seed, spawn_key=(m, n))``.
    """
    return [
        int(np.random.SeedSequence(seed, spawn_key=(m, n)).generate_state(1, np.uint64)[0])
        for m in range(num_tasks)
        for n in range(envs_per_task)
    ]


def concat_steps(steps: Sequence[RawStep]) -> RawStep:
    """Concatenate flat chunk steps along axis 0, in order."""
    return RawStep(
        **{f.name: np.concatenate([getattr(s, f.name) for s in steps]) for f in fields(RawStep)}
    )


class EnvChunk:
    """A contiguous slice of ``K`` copies, stepped one after another with same-step auto-reset.

    Args:
        factories: one :data:`EnvFactory` per copy of the slice.
    """

    def __init__(self, factories: Sequence[EnvFactory]):
        self.envs: list[gym.Env] = [make() for make in factories]

    @property
    def spaces(self) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        """``(observation_space, action_space)`` of one copy (all copies share them)."""
        return self.envs[0].observation_space, self.envs[0].action_space

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Reset copy ``k`` with ``seeds[k]``; returns observations ``[K, obs_dim]`` float32."""
        return np.stack(
            [np.asarray(env.reset(seed=int(s))[0], dtype=np.float32) for env, s in zip(self.envs, seeds)]
        )

    def step(self, actions: np.ndarray) -> RawStep:
        """Step copy ``k`` with ``actions[k]``; a finished copy is reset (not reseeded) at once.

        Returns a :class:`RawStep` whose arrays are flat: obs/final_obs ``[K, obs_dim]`` float32,
        reward ``[K]`` float32, terminated/truncated/success ``[K]`` bool.
        """
        obs, final_obs, reward, terminated, truncated, success = [], [], [], [], [], []
        for env, action in zip(self.envs, actions):
            next_obs, r, term, trunc, info = env.step(action)
            final_obs.append(next_obs)
            if term or trunc:
                next_obs, _ = env.reset()
            obs.append(next_obs)
            reward.append(r)
            terminated.append(term)
            truncated.append(trunc)
            success.append(bool(info.get("success", False)))
        return RawStep(
            obs=np.asarray(obs, dtype=np.float32),
            reward=np.asarray(reward, dtype=np.float32),
            terminated=np.asarray(terminated, dtype=bool),
            truncated=np.asarray(truncated, dtype=bool),
            final_obs=np.asarray(final_obs, dtype=np.float32),
            success=np.asarray(success, dtype=bool),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()


class SyncRunner:
    """All copies in one in-process :class:`EnvChunk` (``chunk``); arrays are flat ``[M*N, ...]``."""

    def __init__(self, factories: Sequence[EnvFactory]):
        self.chunk = EnvChunk(factories)
        self.spaces = self.chunk.spaces
        self._closed = False

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        return self.chunk.reset(seeds)

    def step(self, actions: np.ndarray) -> RawStep:
        return self.chunk.step(actions)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.chunk.close()


class WorkerError(RuntimeError):
    """A worker process failed; the message carries the worker's traceback text."""


def _worker(conn: Connection, factories: Sequence[EnvFactory]) -> None:
    """Worker process main loop: build a chunk, then serve ``(command, payload)`` requests.

    Replies ``("ok", result)`` or ``("error", traceback_text)``; exits on ``"close"`` or when the
    parent's end of the pipe goes away. SIGINT is ignored: the parent decides when workers stop.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        chunk = EnvChunk(factories)
        conn.send(("ok", chunk.spaces))
    except Exception:
        conn.send(("error", traceback.format_exc()))
        conn.close()
        return
    try:
        while True:
            command, payload = conn.recv()
            if command == "close":
                break
            try:
                result = chunk.reset(payload) if command == "reset" else chunk.step(payload)
                conn.send(("ok", result))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone
    finally:
        chunk.close()
        conn.close()


class AsyncRunner:
    """Copies split into ``num_workers`` contiguous chunks, one worker process each.

    Workers are started with the ``forkserver`` method (``spawn`` where unavailable), never
    ``fork``: the parent may hold torch threads. As with any such start method, a script that
    builds async envs at import time needs an ``if __name__ == "__main__":`` guard. Arrays are
    flat ``[M*N, ...]``; worker ``w`` holds copies ``bounds[w][0]:bounds[w][1]``.

    Args:
        factories: one :data:`EnvFactory` per copy, in flat task-major order.
        num_workers: worker processes, ``1 <= num_workers <= len(factories)``.
    """

    def __init__(self, factories: Sequence[EnvFactory], num_workers: int):
        if not 1 <= num_workers <= len(factories):
            raise ValueError(f"num_workers must be in [1, {len(factories)}], got {num_workers}")
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        context = mp.get_context(method)
        edges = np.linspace(0, len(factories), num_workers + 1).round().astype(int)
        self.bounds = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        self.processes: list[mp.process.BaseProcess] = []
        self._conns: list[Connection] = []
        self._closed = False
        for start, stop in self.bounds:
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker, args=(child_end, list(factories[start:stop])), daemon=True
            )
            process.start()
            child_end.close()
            self.processes.append(process)
            self._conns.append(parent_end)
        try:
            self.spaces = self._gather()[0]
        except BaseException:
            self.close()
            raise

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        for conn, (start, stop) in zip(self._conns, self.bounds):
            conn.send(("reset", list(seeds[start:stop])))
        return np.concatenate(self._gather())

    def step(self, actions: np.ndarray) -> RawStep:
        for conn, (start, stop) in zip(self._conns, self.bounds):
            conn.send(("step", actions[start:stop]))
        return concat_steps(self._gather())

    def _gather(self) -> list[Any]:
        """One reply from every worker (all are read, so no pipe is left holding a stale reply);
        raises :class:`WorkerError` for the first failure."""
        results, errors = [], []
        for index, (conn, process) in enumerate(zip(self._conns, self.processes)):
            try:
                status, payload = conn.recv()
            except (EOFError, ConnectionResetError):
                process.join(timeout=1.0)
                status, payload = "error", f"exited unexpectedly (exit code {process.exitcode})"
            if status == "ok":
                results.append(payload)
            else:
                errors.append(f"worker {index} (copies {self.bounds[index]}) failed:\n{payload}")
        if errors:
            raise WorkerError(errors[0])
        return results

    def close(self) -> None:
        """Ask every worker to stop, terminate any that do not; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for conn, process in zip(self._conns, self.processes):
            process.join(timeout=_CLOSE_TIMEOUT_S)
            if process.is_alive():
                process.terminate()
                process.join()
            conn.close()


Runner = SyncRunner | AsyncRunner


class GymBackedVecEnv(MultiTaskVecEnv):
    """A :class:`MultiTaskVecEnv` whose copies are gymnasium envs stepped by a runner.

    Args:
        specs, envs_per_task, seed: as :class:`MultiTaskVecEnv`; every spec must be of ``family``.
        mode: ``"sync"`` (one in-process :class:`EnvChunk`, at ``runner.chunk``) or ``"async"``
            (:class:`AsyncRunner`).
        num_workers: async worker processes (default: the CPUs this process may run on — a SLURM
            job's allocation, not the node's — at most ``M*N``); ignored in sync.

    Attributes:
        runner: the :class:`SyncRunner` or :class:`AsyncRunner`.
        env_seeds: reset seeds of the copies, flat task-major (:func:`copy_seeds`).
    """

    #: the task family this class steps.
    family: str

    def __init__(
        self,
        specs: list[TaskSpec],
        envs_per_task: int,
        seed: int,
        mode: Literal["sync", "async"] = "sync",
        num_workers: int | None = None,
    ):
        super().__init__(specs, envs_per_task, seed)
        wrong = [spec.name for spec in self.specs if spec.family != self.family]
        if wrong:
            raise ValueError(f"{type(self).__name__} takes only {self.family!r} specs; got {wrong}")
        if mode not in ("sync", "async"):
            raise ValueError(f"mode must be 'sync' or 'async', got {mode!r}")
        num_copies = self.num_tasks * self.envs_per_task
        factories = [self.env_factory(spec) for spec in self.specs for _ in range(self.envs_per_task)]
        self.env_seeds = copy_seeds(self.seed, self.num_tasks, self.envs_per_task)
        if mode == "sync":
            self.runner: Runner = SyncRunner(factories)
        else:
            workers = min(len(os.sched_getaffinity(0)), num_copies) if num_workers is None else num_workers
            self.runner = AsyncRunner(factories, workers)
        self.single_observation_space, self.single_action_space = self.runner.spaces

    @abc.abstractmethod
    def env_factory(self, spec: TaskSpec) -> EnvFactory:
        """A picklable callable that builds one copy of ``spec``'s task.

        The env must return float observations of ``single_observation_space``'s shape and, if the
        family has a success notion, ``info["success"]`` on every step.
        """

    def _reset_envs(self) -> np.ndarray:
        return self._task_major(self.runner.reset(self.env_seeds))

    def _step_envs(self, actions: np.ndarray) -> RawStep:
        space = self.single_action_space
        if isinstance(space, gym.spaces.Discrete):
            if not np.issubdtype(actions.dtype, np.integer):
                raise ValueError(f"discrete actions must be integers, got dtype {actions.dtype}")
            if actions.min() < space.start or actions.max() >= space.start + space.n:
                raise ValueError(
                    f"discrete actions must lie in [{space.start}, {space.start + space.n}), "
                    f"got values in [{actions.min()}, {actions.max()}]"
                )
        flat = actions.astype(space.dtype, copy=False).reshape(-1, *space.shape)
        step = self.runner.step(flat)
        return RawStep(**{f.name: self._task_major(getattr(step, f.name)) for f in fields(RawStep)})

    def _task_major(self, flat: np.ndarray) -> np.ndarray:
        """``[M*N, ...]`` → ``[M, N, ...]``."""
        return flat.reshape(self.num_tasks, self.envs_per_task, *flat.shape[1:])

    def close(self) -> None:
        self.runner.close()
