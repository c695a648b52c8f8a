"""select_examples: the per-epoch example gather on wide words equals index_select bit for bit."""

import pytest
import torch

from varshare.algos.gather import _word_view, select_examples


def bits(tensor):
    """The tensor's bytes, so that NaN payloads and signed zeros count."""
    return tensor.contiguous().view(torch.uint8) if tensor.dtype != torch.bool else tensor


@pytest.mark.parametrize("dtype", [torch.int8, torch.float32, torch.float64, torch.int64, torch.bool])
@pytest.mark.parametrize("width", [1, 2, 3, 4, 6, 64, 523])
def test_equals_index_select_bitwise(dtype, width):
    generator = torch.Generator().manual_seed(width)
    raw = torch.randint(0, 256, (5, 37, width * 8), generator=generator, dtype=torch.uint8)
    tensor = raw.view(dtype)[..., :width] if dtype != torch.bool else raw[..., :width] > 127
    tensor = tensor.contiguous()
    index = torch.randperm(37, generator=generator)[:29]
    expected = tensor.index_select(1, index)
    got = select_examples(tensor, index)
    assert got.dtype == tensor.dtype and got.shape == expected.shape
    assert torch.equal(bits(got), bits(expected))


def test_strided_and_two_axis_inputs():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(4, 20, 70, generator=generator)
    index = torch.randperm(20, generator=generator)
    for tensor in (base[:, :, 3:67], base[:, :, :64], base[1:3], base[..., 5], base.transpose(1, 2)[:, :20]):
        assert torch.equal(select_examples(tensor, index), tensor.index_select(1, index))


def test_rows_are_moved_as_the_widest_dividing_words():
    assert _word_view(torch.zeros(2, 3, 64, dtype=torch.int8)).dtype == torch.int64
    assert _word_view(torch.zeros(2, 3, 4, dtype=torch.int8)).dtype == torch.int32
    assert _word_view(torch.zeros(2, 3, 2, dtype=torch.int8)).dtype == torch.int16
    assert _word_view(torch.zeros(2, 3, 1, dtype=torch.int8)).dtype == torch.int8
    assert _word_view(torch.zeros(2, 3, 6, dtype=torch.float32)).dtype == torch.int64
    assert _word_view(torch.zeros(2, 3, 3, dtype=torch.float32)).dtype == torch.float32
    assert _word_view(torch.zeros(2, 3, 70)[:, :, 1:65]).dtype == torch.float32  # 4-byte offset: no wider word
