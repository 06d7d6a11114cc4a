import pytest
import torch
import torch.nn.functional as F

from tomoscribe.errors import ParameterError
from tomoscribe.nets.chen2017 import Chen2017
from tomoscribe.nets.fftconv import fft_conv2d
from tomoscribe.segment.network import ArchitectureSpec, build_network, count_parameters


def test_default_architecture_has_the_papers_parameter_count():
    network = build_network(ArchitectureSpec())
    assert count_parameters(network) == (
        40 * 15 * 15 + 40 + 40 * 40 * 15 * 15 + 40 + 40 * 15 * 15 + 1
    )


def test_2p5d_variant_takes_context_channels():
    network = build_network(ArchitectureSpec("chen2017-2.5d", 2))
    assert network.conv1.in_channels == 5
    out = network(torch.zeros(1, 5, 32, 32))
    assert out.shape == (1, 1, 16, 16)


def test_unet_answers_at_full_resolution_capped_at_one():
    network = build_network(ArchitectureSpec("unet"))
    network.initialise(torch.Generator().manual_seed(0))
    out = network(torch.randn(2, 1, 32, 48) * 50)
    assert out.shape == (2, 1, 32, 48) and float(out.max()) <= 1.0


def test_output_activation_is_min_one():
    network = Chen2017()
    with torch.no_grad():
        for conv in (network.conv1, network.conv2, network.conv3):
            conv.weight.zero_()
            conv.bias.zero_()
        network.conv3.bias.fill_(3.0)
        assert float(network(torch.zeros(1, 1, 8, 8)).max()) == 1.0
        network.conv3.bias.fill_(-2.0)
        assert float(network(torch.zeros(1, 1, 8, 8)).min()) == -2.0


@pytest.mark.parametrize("shape", [(3, 1, 40, 40), (2, 5, 33, 47)])
def test_fft_convolution_equals_direct_convolution_and_its_gradients(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    weight = (torch.randn(4, shape[1], 15, 15) * 0.05).requires_grad_()
    bias = torch.randn(4, requires_grad=True)
    direct = F.conv2d(x, weight, bias, padding=7)
    fast = fft_conv2d(x, weight, bias, 7)
    assert fast.shape == direct.shape
    assert float((fast - direct).abs().max()) < 1e-4
    g_direct = torch.autograd.grad(direct.square().sum(), (x, weight, bias))
    g_fast = torch.autograd.grad(fast.square().sum(), (x, weight, bias))
    for a, b in zip(g_direct, g_fast):
        assert float((a - b).abs().max() / a.abs().max()) < 1e-4
    # Weights only (the network's first layer: its input needs no gradient).
    x_fixed = x.detach()
    w_direct = torch.autograd.grad(
        F.conv2d(x_fixed, weight, bias, padding=7).square().sum(), weight
    )
    w_fast = torch.autograd.grad(fft_conv2d(x_fixed, weight, bias, 7).square().sum(), weight)
    assert float((w_direct[0] - w_fast[0]).abs().max() / w_direct[0].abs().max()) < 1e-4


def test_fft_and_direct_network_modes_agree():
    network = Chen2017()
    network.initialise(torch.Generator().manual_seed(1), scale=0.05)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        direct = network(x)
        network.conv_mode = "fft"
        fast = network(x)
    assert float((direct - fast).abs().max()) < 1e-4


def test_unknown_or_inconsistent_architecture_is_refused():
    with pytest.raises(ParameterError, match="unknown architecture"):
        ArchitectureSpec("resnet").validate()
    with pytest.raises(ParameterError, match="`context_slices=1`"):
        ArchitectureSpec("chen2017-2.5d", 0).validate()
    with pytest.raises(ParameterError):
        ArchitectureSpec("chen2017", 2).validate()
