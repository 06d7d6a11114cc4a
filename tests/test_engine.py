import numpy as np
import pytest
import torch

from tomoscribe.errors import InvalidDataError, VoxelSizeMismatchError
from tomoscribe.segment import engine
from tomoscribe.segment.engine import segment_array
from tomoscribe.segment.modelfile import FeatureModel
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.volume import Volume


def _model(spec=ArchitectureSpec(), amplitude=0.5, voxel=10.0, seed=0):
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(seed), 0.05)
    return FeatureModel(network.eval(), spec, f"f{seed}", voxel, amplitude)


def _volume(shape=(5, 70, 90), voxel=10.0):
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    return Volume(data, (voxel,) * 3)


def test_output_is_network_on_whole_slice_upsampled_and_divided_by_amplitude():
    volume, model = _volume(), _model()
    (out,) = segment_array(volume, [model], device="cpu")
    with torch.no_grad():
        x = torch.from_numpy(volume.data[2:3, None])
        half = model.network(x)
        full = torch.nn.functional.interpolate(
            half, scale_factor=2, mode="bilinear", align_corners=False
        )[0, 0]
    # float32: the engine runs slices in batches, and the convolution library may sum in
    # another order for another batch size (1.1e-5 seen on a clean clone); 1e-4 is the
    # issue's tolerance for engines against the reference.
    np.testing.assert_allclose(out.data[2], full.numpy()[:70, :90] / 0.5, atol=1e-4)
    assert out.voxel_size_A == volume.voxel_size_A


def test_tiles_give_the_same_answer_as_whole_slices(monkeypatch):
    volume = _volume((3, 150, 90))
    models = [_model(), _model(ArchitectureSpec("unet"), seed=1)]
    whole = segment_array(volume, models, device="cpu")
    monkeypatch.setattr(engine, "_CPU_TILE", 24)  # 7 × 4 tiles of 18–24 pixels
    tiles = segment_array(volume, models, device="cpu", batch_slices=1)
    # Tiles of other shapes get other FFT blocks, so float32 rounding differs (7e-6
    # seen on outputs of ~4); a missing or short halo would differ by far more.
    for a, b in zip(whole, tiles):
        np.testing.assert_allclose(a.data, b.data, atol=1e-4)
    assert engine._even_tiles(150, 24, 2) == 22 and engine._even_tiles(90, 24, 4) == 24


def test_worker_threads_take_the_callers_grad_mode(monkeypatch):
    # grad mode is thread-local in torch: a worker thread starts with grad on, and a
    # network run there under the caller's no_grad built a graph into the shared output
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    seen = []
    with torch.no_grad():
        engine._run_single_threaded([(i,) for i in range(6)], lambda i: seen.append(
            torch.is_grad_enabled()))  # fmt: skip
    assert seen == [False] * 6


def test_odd_sizes_and_context_models():
    volume = _volume((4, 33, 47))
    (out,) = segment_array(volume, [_model(ArchitectureSpec("chen2017-2.5d", 2))], device="cpu")
    assert out.shape == (4, 33, 47) and np.isfinite(out.data).all()


def test_voxel_size_mismatch_is_refused_unless_rescaled():
    volume = _volume((2, 64, 64), voxel=13.0)
    with pytest.raises(VoxelSizeMismatchError, match="`rescale=True`"):
        segment_array(volume, [_model(voxel=10.0)], device="cpu")
    (out,) = segment_array(volume, [_model(voxel=10.0)], device="cpu", rescale=True)
    assert out.shape == volume.shape
    # within 5% is accepted as it is
    segment_array(_volume((1, 32, 32), voxel=10.4), [_model(voxel=10.0)], device="cpu")


def test_nan_tomogram_is_refused():
    volume = _volume((2, 32, 32))
    volume.data[1, 5, 5] = np.inf
    with pytest.raises(InvalidDataError, match="z=1"):
        segment_array(volume, [_model()], device="cpu")


def test_reduced_precision_needs_cuda():
    from tomoscribe.errors import ParameterError

    with pytest.raises(ParameterError, match="CUDA"):
        segment_array(_volume((1, 32, 32)), [_model()], device="cpu", precision="bf16")
    with pytest.raises(ParameterError, match="precision"):
        segment_array(_volume((1, 32, 32)), [_model()], device="cpu", precision="fp8")


@pytest.mark.cuda
@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-4), ("tf32", 3e-2), ("bf16", 0.2)])
def test_cuda_matches_cpu(precision, tolerance):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    volume, model = _volume((3, 64, 96)), _model()
    (cpu,) = segment_array(volume, [model], device="cpu")
    (gpu,) = segment_array(volume, [model], device="cuda", precision=precision)
    np.testing.assert_allclose(cpu.data, gpu.data, atol=tolerance)
