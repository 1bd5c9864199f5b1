import itertools

import pytest
import torch
import torch.nn.functional as F

from restoregen.attention import (
    overlap_relative_position_index,
    overlapping_windows,
    pad_to_multiple,
    relative_position_bias,
    relative_position_index,
    shifted_window_mask,
    window_merge,
    window_partition,
)


@pytest.mark.parametrize("window", [4, (2, 4)])
def test_partition_merge_round_trip_and_order(window):
    x = torch.randn(2, 8, 12, 3)
    windows = window_partition(x, window)
    wh, ww = (window, window) if isinstance(window, int) else window
    assert windows.shape == (2, (8 // wh) * (12 // ww), wh * ww, 3)
    # window 1 (second in row-major order) starts at column ww of the first window row
    torch.testing.assert_close(windows[:, 1, 0], x[:, 0, ww])
    torch.testing.assert_close(windows[:, 0, ww], x[:, 1, 0])
    assert torch.equal(window_merge(windows, window, 8, 12), x)


def test_partition_rejects_non_multiples():
    with pytest.raises(ValueError, match="not a multiple"):
        window_partition(torch.randn(1, 7, 8, 3), 4)


def test_pad_to_multiple_reflects_like_the_official_pipeline():
    x = torch.randn(1, 3, 13, 19)
    padded = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (16, 24)
    assert torch.equal(padded, F.pad(x, (0, 5, 0, 3), mode="reflect"))
    assert pad_to_multiple(torch.randn(1, 3, 16, 8), 8).shape[-2:] == (16, 8)


def test_pad_to_multiple_handles_pads_larger_than_the_image():
    x = torch.arange(3.0).view(1, 1, 1, 3).expand(1, 1, 3, 3).contiguous()
    padded = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (8, 8)
    # repeated mirror: 0 1 2 1 0 1 2 1
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    single = pad_to_multiple(torch.ones(1, 1, 1, 1), 4)
    assert single.shape[-2:] == (4, 4) and torch.all(single == 1)


def _brute_force_index(wh, ww):
    coords = list(itertools.product(range(wh), range(ww)))
    index = torch.empty(len(coords), len(coords), dtype=torch.int64)
    for i, (y1, x1) in enumerate(coords):
        for j, (y2, x2) in enumerate(coords):
            index[i, j] = (y1 - y2 + wh - 1) * (2 * ww - 1) + (x1 - x2 + ww - 1)
    return index


@pytest.mark.parametrize("window", [(4, 4), (3, 5)])
def test_relative_position_index(window):
    assert torch.equal(relative_position_index(window), _brute_force_index(*window))


def test_relative_position_bias_gathers_per_head():
    table = torch.randn(49, 3)
    index = relative_position_index((4, 4))
    bias = relative_position_bias(table, index)
    assert bias.shape == (3, 16, 16)
    assert torch.equal(bias[2, 5, 7], table[index[5, 7], 2])


def test_overlap_index_is_a_bijection_onto_the_table():
    index = overlap_relative_position_index(8, 12)
    assert index.shape == (64, 144)
    wrapped = index % (8 + 12 - 1) ** 2
    # displacement (key - query) determines the entry, and distinct displacements get distinct entries
    q = torch.cartesian_prod(torch.arange(8), torch.arange(8))
    k = torch.cartesian_prod(torch.arange(12), torch.arange(12))
    disp = (k[None] - q[:, None]).reshape(-1, 2)
    pairs = set(zip(map(tuple, disp.tolist()), wrapped.flatten().tolist(), strict=True))
    assert len(pairs) == len({d for d, _ in pairs}) == len({i for _, i in pairs})


def test_overlapping_windows_match_unfold():
    b, c, h, w, win, over = 2, 5, 8, 12, 4, 6
    x = torch.randn(b, h, w, c)
    windows = overlapping_windows(x, win, over)
    unfolded = F.unfold(x.permute(0, 3, 1, 2), over, stride=win, padding=(over - win) // 2)  # b, c*o*o, nW
    expected = unfolded.view(b, c, over * over, -1).permute(0, 3, 2, 1)
    assert torch.equal(windows, expected)


def test_overlapping_windows_need_an_even_margin():
    with pytest.raises(ValueError, match="even"):
        overlapping_windows(torch.randn(1, 8, 8, 2), 4, 7)


def _brute_force_mask(h, w, win, shift):
    img = torch.zeros(h, w)
    count = 0
    for hs in (slice(0, -win), slice(-win, -shift), slice(-shift, None)):
        for ws in (slice(0, -win), slice(-win, -shift), slice(-shift, None)):
            img[hs, ws] = count
            count += 1
    labels = window_partition(img[None, :, :, None], win)[0, :, :, 0]
    diff = labels[:, None, :] - labels[:, :, None]
    return torch.where(diff != 0, -100.0, 0.0)


@pytest.mark.parametrize("h,w,win,shift", [(16, 16, 8, 4), (8, 24, 4, 2), (12, 8, 4, 1)])
def test_shifted_window_mask(h, w, win, shift):
    assert torch.equal(shifted_window_mask(h, w, win, shift), _brute_force_mask(h, w, win, shift))


def test_cached_tensors_are_shared_and_usable_outside_inference_mode():
    with torch.inference_mode():
        first = shifted_window_mask(32, 32, 8, 4, "cpu", torch.float32)
    assert shifted_window_mask(32, 32, 8, 4, "cpu", torch.float32) is first
    assert not first.is_inference()
    weight = torch.randn(1, requires_grad=True)
    (first * weight).sum().backward()  # would fail for an inference tensor saved for backward


@pytest.mark.parametrize("batch", [1, 3])
def test_window_layout_gathers_every_sample_of_a_batch(batch):
    from restoregen.attention import window_layout

    torch.manual_seed(0)
    x = torch.randn(batch, 8, 12, 5)
    layout = window_layout(8, 12, (4, 4), (2, 2))
    windows = layout.partition(x)
    assert windows.shape == (batch, 6, 16, 5)
    for sample in range(batch):
        assert torch.equal(windows[sample].reshape(-1, 5), x[sample].reshape(-1, 5)[layout.order])
    assert torch.equal(layout.merge(windows), x)


def test_split_regions_sort_each_masked_window_into_runs_of_one_region():
    from restoregen.attention import window_layout

    layout = window_layout(16, 24, (8, 8), (4, 4), split_regions=True)
    plain = window_layout(16, 24, (8, 8), (4, 4))
    assert torch.equal(torch.sort(layout.order).values, torch.sort(plain.order).values)
    labels = layout.labels.view(-1, 64)
    split = [g for g in layout.groups if g.tokens is not None]
    assert [g.regions(64) for g in split] == [2, 2, 4]  # last column, last row, corner
    for group in split:
        assert group.mask is None
        runs = labels[group.start:group.stop].view(group.stop - group.start, group.regions(64), -1)
        assert (runs == runs[..., :1]).all()  # every run holds one region
    # a shift that is not half the window leaves regions of different shapes: masked as before
    uneven = window_layout(24, 24, (8, 8), (3, 3), split_regions=True)
    assert all(g.tokens is None for g in uneven.groups) and any(g.mask is not None for g in uneven.groups)


def test_split_regions_attend_as_the_official_mask():
    from restoregen.attention import WindowAttention, attention_backend

    torch.manual_seed(0)
    attention = WindowAttention(12, 4, 3).eval()
    x = torch.randn(2, 8, 12, 12)
    with torch.inference_mode():
        with attention_backend("math"):
            expected = attention.forward_map(x, shift=2)
        out = attention.forward_map(x, shift=2)
    assert any(key[1] is not None for key in attention.__dict__["_bias_cache"] if key != "table")  # region biases
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
