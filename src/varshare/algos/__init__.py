"""RL algorithms (PPO), method-agnostic and task-batched."""
