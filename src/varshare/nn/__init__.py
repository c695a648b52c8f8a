"""Multi-task layers and networks: one batched forward pass serves all tasks."""

from varshare.nn.kl import (
    diagonal_gaussian_kl_elements,
    gaussian_kl,
    gaussian_kl_elements,
    gaussian_kls_per_task,
    softplus_gaussian_kl_per_task,
    softplus_gaussian_kls_per_task,
)
from varshare.nn.layers import (
    ESTIMATORS,
    MultiTaskLinear,
    Noise,
    PerTaskLinear,
    ResidualLinear,
    SharedLinear,
    VariationalResidualLinear,
    affine,
)
from varshare.nn.horseshoe import HorseshoeResidualLinear
from varshare.nn.lora import VariationalLoRALinear
from varshare.nn.networks import ActorCritic, LayerFactory, MultiTaskMLP, PolicyOutput

__all__ = [
    "ESTIMATORS",
    "ActorCritic",
    "HorseshoeResidualLinear",
    "LayerFactory",
    "MultiTaskLinear",
    "MultiTaskMLP",
    "Noise",
    "PerTaskLinear",
    "PolicyOutput",
    "ResidualLinear",
    "SharedLinear",
    "VariationalLoRALinear",
    "VariationalResidualLinear",
    "affine",
    "diagonal_gaussian_kl_elements",
    "gaussian_kl",
    "gaussian_kl_elements",
    "gaussian_kls_per_task",
    "softplus_gaussian_kl_per_task",
    "softplus_gaussian_kls_per_task",
]
