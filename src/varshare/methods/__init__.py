"""Sharing methods: each defines how a network's layers get per-task weights, an extra loss and
a gradient combiner. Importing this package registers all of them."""

from varshare.methods.base import REGISTRY, Method, make_method, register
from varshare.methods.grad_combiners import cagrad, pcgrad
from varshare.methods import contextual, gradient_surgery, hard_sharing, independent, l2_soft, varshare  # noqa: F401  (register)
from varshare.methods import (  # noqa: F401  (register the VarShare variants)
    horseshoe, lora, reptile, trust_region, varshare_variants,
)

__all__ = ["REGISTRY", "Method", "make_method", "register", "pcgrad", "cagrad"]
