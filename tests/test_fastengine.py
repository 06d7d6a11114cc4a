"""The fast exact engine equals the reference (direct convolution) within 1e-4."""

import numpy as np
import pytest
import torch

from tomoscribe.errors import ParameterError
from tomoscribe.segment import engine
from tomoscribe.segment.engine import segment_array
from tomoscribe.segment.fastengine import (
    CPU_BLOCKS,
    chen2017_forward,
    choose_block,
    conv_pool,
    overlap_save_conv,
)
from tomoscribe.segment.modelfile import FeatureModel
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.volume import Volume


def _network(spec=ArchitectureSpec(), seed=0):
    network = build_network(spec)
    torch.manual_seed(seed)
    for conv in (network.conv1, network.conv2, network.conv3):
        torch.nn.init.normal_(conv.weight, std=0.03)
        torch.nn.init.normal_(conv.bias, std=0.1)
    return network.eval()


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 1, 130, 98), (1, 5, 52, 150)])
def test_fast_forward_equals_the_network(shape):
    spec = ArchitectureSpec("chen2017-2.5d", 2) if shape[1] == 5 else ArchitectureSpec()
    network = _network(spec)
    x = torch.randn(*shape)
    with torch.no_grad():
        reference = network(x)
    fast = chen2017_forward(network, x)
    assert fast.shape == reference.shape
    assert float((fast - reference).abs().max()) < 1e-4
    # The parts on their own: pooled conv1 and an FFT block smaller than the slice.
    with torch.no_grad():
        pooled = torch.nn.functional.max_pool2d(network.conv1(x), 2)
        assert float((conv_pool(x, network.conv1) - pooled).abs().max()) < 1e-4
        y = torch.randn(1, 40, 45, 37)
        assert (
            float((overlap_save_conv(y, network, network.conv2, 32) - network.conv2(y)).abs().max())
            < 1e-4
        )


@pytest.mark.parametrize("block", CPU_BLOCKS)
def test_every_cpu_block_size_is_exact(block):
    network = _network()
    y = torch.randn(1, 40, 70, 181)
    with torch.no_grad():
        for conv in (network.conv2, network.conv3):
            assert float((overlap_save_conv(y, network, conv, block) - conv(y)).abs().max()) < 1e-4


def test_block_choice_covers_a_tile_with_the_fewest_frequencies():
    # 256² at 15×15 kernels: 9 blocks of 100 (46 k frequency samples) against 16 of 80
    # (52 k), 36 of 64 (76 k), 9 of 128 (75 k) and 4 of 160 (52 k).
    assert choose_block(256, 256, 15) == 100
    assert choose_block(276, 276, 15) == 160  # 4 blocks of 160 (52 k) against 75 k+
    assert choose_block(40, 40, 15) == 64  # one block of each: the smallest
    assert choose_block(256, 256, 15, (64, 80)) == 80
    with pytest.raises(ValueError):
        choose_block(10, 10, 15, (8, 12))


def test_engine_auto_uses_it_and_matches_direct():
    data = np.random.default_rng(1).normal(size=(3, 90, 120)).astype(np.float32)
    volume = Volume(data, 10.0)
    model = FeatureModel(_network(), ArchitectureSpec(), "f", 10.0, 0.7)
    assert engine.use_fast_engine(model, torch.device("cpu"))
    (fast,) = segment_array(volume, [model], device="cpu", engine="auto")
    (direct,) = segment_array(volume, [model], device="cpu", engine="direct")
    assert float(np.abs(fast.data - direct.data).max()) < 1e-4
    with pytest.raises(ParameterError):
        segment_array(volume, [model], device="cpu", engine="warp")


def test_unsupported_architecture_falls_back_with_a_warning():
    network = build_network(ArchitectureSpec("unet"))
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    model = FeatureModel(network.eval(), ArchitectureSpec("unet"), "u", 10.0, 1.0)
    volume = Volume(np.random.default_rng(0).normal(size=(2, 32, 32)).astype(np.float32), 10.0)
    with pytest.warns(UserWarning, match="reference engine"):
        (fast,) = segment_array(volume, [model], device="cpu", engine="fast")
    (direct,) = segment_array(volume, [model], device="cpu", engine="direct")
    np.testing.assert_array_equal(fast.data, direct.data)


def test_results_do_not_depend_on_the_thread_count():
    """Bit for bit: what lets a cluster of 1-thread workers match a 2-thread process."""
    data = np.random.default_rng(2).normal(size=(3, 200, 136)).astype(np.float32)
    volume = Volume(data, 10.0)
    model = FeatureModel(_network(), ArchitectureSpec(), "f", 10.0, 0.7)
    threads = torch.get_num_threads()
    answers = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            answers.append(segment_array(volume, [model], device="cpu")[0].data)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(answers[0], answers[1]) and np.array_equal(answers[0], answers[2])
