"""Shared export-friendly layers against the official operations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitrt.models.layers import adaptive_pool_matrix, shared_head_depthwise_conv


@pytest.mark.parametrize(("size", "pool"), [(56, 3), (14, 9), (24, 7), (28, 4), (14, 7), (64, 3), (8, 7)])
def test_pool_matrix_equals_adaptive_avg_pool(size, pool):
    x = torch.randn(2, 5, size, size)
    expected = F.adaptive_avg_pool2d(x, pool).flatten(2)
    got = x.flatten(2) @ adaptive_pool_matrix((size, size), (pool, pool)).T
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_shared_head_depthwise_conv_equals_batch_folded_official_form():
    b, heads, d, side = 2, 3, 8, 7
    conv = nn.Conv2d(d, d, 5, padding=2, groups=d)
    v = torch.randn(b, heads * d, side, side)
    official = conv(v.reshape(b * heads, d, side, side)).reshape(b, heads * d, side, side)
    torch.testing.assert_close(shared_head_depthwise_conv(v, conv, heads), official, atol=1e-5, rtol=1e-5)
