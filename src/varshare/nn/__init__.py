"""Multi-task layers and networks: one batched forward pass serves all tasks."""

from varshare.nn.horseshoe import HorseshoeResidualLinear
from varshare.nn.kl import diagonal_gaussian_kl_elements, gaussian_kl, gaussian_kl_elements, gaussian_kl_per_task
from varshare.nn.layers import (
    MultiTaskLinear,
    PerTaskLinear,
    ResidualLinear,
    SharedLinear,
    VariationalLayer,
    VariationalResidualLinear,
)
from varshare.nn.lora import VariationalLoRALinear
from varshare.nn.networks import LayerFactory, MultiTaskMLP, named_layers, shared_parameters
from varshare.nn.noise import (
    ESTIMATORS,
    LayerNoise,
    NetworkNoise,
    affine,
    map_examples,
    select_examples,
    slice_examples,
)

__all__ = [
    "ESTIMATORS",
    "HorseshoeResidualLinear",
    "LayerFactory",
    "LayerNoise",
    "MultiTaskLinear",
    "MultiTaskMLP",
    "NetworkNoise",
    "PerTaskLinear",
    "ResidualLinear",
    "SharedLinear",
    "VariationalLayer",
    "VariationalLoRALinear",
    "VariationalResidualLinear",
    "affine",
    "diagonal_gaussian_kl_elements",
    "gaussian_kl",
    "gaussian_kl_elements",
    "gaussian_kl_per_task",
    "map_examples",
    "named_layers",
    "select_examples",
    "shared_parameters",
    "slice_examples",
]
