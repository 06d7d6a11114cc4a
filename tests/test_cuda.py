"""Every stage that runs on a GPU gives the CPU's answer there (skipped without CUDA).

Each test runs one stage on the CUDA device and checks it against the truth it was
measured against on the CPU (or against the CPU's own output, within the arithmetic's
tolerance): training and segmenting through the command line, classifier training and
inference, the wedge-aware alignment and de novo averaging of subtomograms, and the
single-particle picker's training.
"""

import json
import os

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

#: The device under test; TOMOSCRIBE_TEST_GPU=cpu runs these tests' logic without a GPU.
GPU = os.environ.get("TOMOSCRIBE_TEST_GPU", "cuda")

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(GPU == "cuda" and not torch.cuda.is_available(), reason="no CUDA device"),
]


def test_train_and_segment_on_cuda_reach_the_cpu_scores(tmp_path):
    """The end-to-end annotation of test_end_to_end, trained and applied on the GPU."""
    from shapes_annotation import FEATURES, annotate_and_train
    from tomoscribe.cli.app import main
    from tomoscribe.io import read_volume
    from tomoscribe.metrics import overlap_scores
    from tomoscribe.simulate.shapes import CLASS_IDS

    _, truth = annotate_and_train(tmp_path, GPU)
    features = FEATURES
    for device in dict.fromkeys((GPU, "cpu")):
        (tmp_path / device).mkdir(exist_ok=True)
        assert (
            main(
                [
                    "segment",
                    str(tmp_path / "pre.mrc"),
                    "-o",
                    str(tmp_path / device),
                    "-m",
                    str(tmp_path / "membrane.tsm"),
                    "-m",
                    str(tmp_path / "blob.tsm"),
                    "--device",
                    device,
                    "-q",
                ]
            )
            == 0
        )
    for feature in features:
        gpu = read_volume(tmp_path / GPU / f"pre_{feature}.mrc").data
        cpu = read_volume(tmp_path / "cpu" / f"pre_{feature}.mrc").data
        np.testing.assert_allclose(gpu, cpu, atol=1e-3)  # fp32 on both: the same maps
    maps = [str(tmp_path / GPU / f"pre_{f}.mrc") for f in features]
    assert (
        main(["merge", *maps, "-o", str(tmp_path / "labels.mrc"), "--threshold", "0.7", "-q"]) == 0
    )
    labels = read_volume(tmp_path / "labels.mrc").data
    legend = json.loads((tmp_path / "labels.mrc.legend.json").read_text())
    ids = {entry["name"]: int(key) for key, entry in legend.items()}
    # The CPU-trained networks reach 0.81 (membrane) and 0.84 (blob) at this threshold.
    for feature in features:
        dice = overlap_scores(labels == ids[feature], truth.data == CLASS_IDS[feature])["dice"]
        assert dice >= 0.7, (feature, dice)


def test_classifier_trains_and_predicts_on_cuda():
    from synthetic_shapes import SHAPE_NAMES, shapes
    from tomoscribe.classify.training import (
        ClassifierParams,
        extract_features,
        predict,
        split_halves,
        train_classifier,
    )

    volumes, labels = shapes()
    train, test = split_halves(labels, 0.5, seed=1)
    classifier = train_classifier(
        volumes[train],
        labels[train],
        SHAPE_NAMES,
        "resnet3d",
        ClassifierParams(epochs=20, batch_size=16),
        voxel_size_A=9.2,
        device=GPU,
    )
    on_gpu = predict(classifier, volumes[test], device=GPU)
    on_cpu = predict(classifier, volumes[test], device="cpu")
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-2)  # cuDNN may use TF32
    assert float((on_gpu.argmax(1) == labels[test]).mean()) >= 0.8  # as on the CPU
    np.testing.assert_allclose(
        extract_features(classifier, volumes[:4], device=GPU),
        extract_features(classifier, volumes[:4], device="cpu"),
        rtol=1e-2,
        atol=1e-2,
    )


@pytest.fixture(scope="module")
def ribosomes():
    """24 subtomograms of a 70S ribosome (10 Å voxels, box 40, ±60°, SNR 2, CTF 3 µm)."""
    from tomoscribe.simulate.subtomograms import (
        SubtomogramParams,
        simulate_subtomograms,
        template_in_box,
    )
    from tomoscribe.simulate.template_library import load_template

    data = simulate_subtomograms(
        ["4v5d"],
        24,
        SubtomogramParams(
            box=40, voxel_size_A=10.0, snr=2.0, include_empty=False, defocus_um=3.0, seed=3
        ),
    )
    truth = template_in_box(load_template("4v5d"), 10.0, 40)
    return -data["volumes"], Rotation.from_matrix(data["rotations"]), data["shifts_zyx"], truth


def test_alignment_search_on_cuda_finds_the_cpu_orientations(ribosomes):
    from tomoscribe.core.rotations import angular_distance_deg, local_offsets
    from tomoscribe.structure.align import Aligner

    volumes, rotations, shifts, truth = ribosomes
    found = {}
    for device in dict.fromkeys((GPU, "cpu")):
        particles = torch.as_tensor(volumes[:8], device=device)
        reference = torch.as_tensor(truth, device=device)
        fine = Aligner(particles, 10.0, (-60, 60), 18.0, 6.0)
        orientation = rotations[:8] * local_offsets(10.0, 10.0)[[1] * 8]  # off by one step
        for step in (10.0, 4.0):
            orientation, shift, _ = fine.search_local(
                reference, orientation, local_offsets(step, 2 * step), 30.0
            )
        found[device] = orientation, shift
    assert np.median(angular_distance_deg(found[GPU][0], rotations[:8])) < 6.0
    # cuDNN/cuFFT round differently: the same candidates win, up to a rare near-tie.
    apart = angular_distance_deg(found[GPU][0], found["cpu"][0])
    assert np.median(apart) < 1e-3 and apart.max() < 4.0
    assert np.median(np.abs(found[GPU][1] - found["cpu"][1]).max(1)) < 1e-3


def test_de_novo_average_on_cuda(ribosomes):
    from tomoscribe.structure.average import AverageParams, align_map_to, refine_average
    from tomoscribe.structure.fsc import fsc_curve, resolution_at

    volumes, _, _, truth = ribosomes
    result = refine_average(
        volumes,
        10.0,
        AverageParams(iterations=2, denovo_rounds=3, global_step_deg=25.0),
        device=GPU,
    )
    assert 20.0 < result["resolution_0143_A"] < 45.0  # as on the CPU
    aligned, _, _, corr = align_map_to(result["map"], truth, 10.0)
    assert corr > 0.6
    assert resolution_at(fsc_curve(aligned, truth, 10.0), 0.5) < 45.0


def test_spa_picker_trained_on_cuda_meets_the_cpu_pickers_bars(tmp_path):
    """`spa train --device cuda`: a two-pair picker with self-training, trained on the
    GPU, saved, loaded on the CPU and scored on held-out micrographs against the truth,
    to the bars the CPU-trained pair meets in test_spa (1,200 steps, 768² micrographs)."""
    from spa_picking_data import picking_set, short_of_bars
    from tomoscribe.cli.app import main
    from tomoscribe.spa.picking import load_picker, pick_micrograph
    from tomoscribe.spa.scoring import score_simulated
    from tomoscribe.spa.trainset import save_trainset

    truths, held_out, trainset = picking_set()
    save_trainset(tmp_path / "boxes.tss", trainset)
    command = ["spa", "train", str(tmp_path / "boxes.tss"), "-o", str(tmp_path / "p.tsp")]
    if GPU == "cuda":
        torch.cuda.reset_peak_memory_stats()
    assert main([*command, "--steps", "1200", "--device", GPU]) == 0
    if GPU == "cuda":  # the networks trained there
        assert torch.cuda.max_memory_allocated() > 0
    picker, record = load_picker(tmp_path / "p.tsp")
    assert record["training"]["pairs"] == 2
    assert record["training"]["self_training"]["added"] > 0
    calibration = record["training"]["calibration"]
    assert calibration["held_out_boxes"] == {"good": 6, "background": 6, "bad": 6}
    threshold = record["threshold"]
    assert 0.05 < threshold < 0.95
    result = score_simulated(
        truths,
        held_out,
        lambda n, im: pick_micrograph(picker, im, n, trainset["record"], threshold=threshold),
    )
    assert not short_of_bars(result), result
