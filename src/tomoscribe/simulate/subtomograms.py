"""Subtomogram datasets with ground truth, following Xu et al. 2017 (Bioinformatics 33:i13).

For each chosen structure, N subtomograms: the template density (10 Å library or any
map) is resampled to the dataset's voxel size (default 9.2 Å) in a cubic box (default
40³), rotated by a uniformly random rotation and shifted by up to ``max_shift_voxels``,
projected over the tilt range, passed through the CTF (default 300 kV, Cs 2 mm, 5 µm
underfocus) and the detector MTF ``sinc(πω/2)``, made noisy, and reconstructed by
weighted back-projection, so each carries the missing wedge.  An ``empty`` class holds
noise only.  Crowded datasets add neighbours (other templates, random orientations,
cut by the box edge) around each centre particle and store a voxel mask of the centre
particle, for voxelwise segmentation (Zeng et al. 2017).

SNR is defined on the subtomogram, as measured by Frank & Al-Ali 1975: with two
independent noise realisations of one particle correlating at c, SNR = c / (1 − c) =
var(signal) / var(noise) over the box.  WBP is linear, so the projection noise level
that gives the requested 3D SNR is set from the reconstruction of unit noise through
the same geometry.

Orientations (rotating the template into the particle) are stored as rotation
matrices, as scipy's intrinsic "ZYZ" angles of those matrices (``euler_zyz_deg``;
not RELION's, which describe the inverse rotation) and as RELION's rot, tilt, psi
(``angles_relion_deg``, as ``simulate cell``'s particles.star), in degrees.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage
from scipy.spatial.transform import Rotation

from ..core.acquisition import Acquisition
from ..core.rotations import to_euler
from ..errors import InputFileError, ParameterError, missing_file
from ..outputs import atomic_path
from .imaging import ImagingParams, noiseless_tilt_series
from .template_library import load_template
from .tilt import weighted_back_projection

EMPTY = "empty"


@dataclass(frozen=True)
class SubtomogramParams:
    """Settings of a subtomogram dataset (defaults: Xu et al. 2017)."""

    box: int = 40
    voxel_size_A: float = 9.2
    max_shift_voxels: float = 3.0
    max_tilt_deg: float = 60.0
    tilt_step_deg: float = 2.0
    snr: float | None = 0.1
    defocus_um: float = 5.0
    voltage_kV: float = 300.0
    cs_mm: float = 2.0
    amplitude_contrast: float = 0.07
    include_empty: bool = True
    seed: int = 0
    noise_seed: int | None = None  # separate noise stream: same particles, new noise
    crowded_neighbours: int = 0  # > 0: that many neighbours around each centre particle

    def imaging(self) -> ImagingParams:
        return ImagingParams(
            max_tilt_deg=self.max_tilt_deg,
            tilt_step_deg=self.tilt_step_deg,
            tilt_order="sequential",
            voltage_kV=self.voltage_kV,
            cs_mm=self.cs_mm,
            defocus_um=self.defocus_um,
            amplitude_contrast=self.amplitude_contrast,
            snr=None,
        )

    def validate(self) -> None:
        """Refuse settings that cannot make a dataset.

        Raises
        ------
        ParameterError
            A non-positive SNR or voxel size (Å), a negative shift (voxels), a box under
            8 voxels, or a tilt scheme :class:`ImagingParams` refuses.
        """
        if self.snr is not None and not self.snr > 0:
            raise ParameterError(f"SNR must be positive, got {self.snr}.")
        if not self.voxel_size_A > 0:
            raise ParameterError(f"the voxel size must be positive, got {self.voxel_size_A} Å.")
        if not self.max_shift_voxels >= 0:
            raise ParameterError(f"the shift must not be negative, got {self.max_shift_voxels}.")
        if self.box < 8:
            raise ParameterError(f"the box must be at least 8 voxels, got {self.box}.")
        self.imaging().validate()


def template_in_box(template, voxel_size_A: float, box: int, name: str = "") -> np.ndarray:
    """Resample a template Volume to ``voxel_size_A`` in a ``box``³ array whose centre
    voxel (``box // 2``) is the template's own box centre (voxel ``n // 2``), as RELION
    and Dynamo place a reference: the bundled templates hold their centre of mass
    there, and a user's map is taken about its box centre.  One trilinear resampling
    does both, so the centre lands to a fraction of a voxel at any voxel size (a trial:
    resampled, then recentred on its centre of mass rounded to a voxel, the truth was
    0.26 voxels, 3.5 Å, off at 13.7 Å; a user's map was placed about its centre of mass,
    13 Å from where a reference is).

    Raises
    ------
    ParameterError
        If the structure (its density above 5% of the maximum) does not fit the box
        about that centre.
    """
    data = np.asarray(template.data, np.float32)
    step = voxel_size_A / template.voxel_size_A[0]  # template voxels per box voxel
    centre = np.array(data.shape) // 2
    support = np.argwhere(data > 0.05 * data.max())
    reach = np.abs(support - centre).max(axis=0) / step if len(support) else np.zeros(3)
    if np.any(reach > box // 2 - 0.5) or np.any(reach * 2 + 1 > box):
        raise ParameterError(
            f"the structure{' ' + name if name else ''} spans {int(np.ceil(2 * reach.max() + 1))} "
            f"voxels about its centre at {voxel_size_A:g} Å but the box is {box}; use a "
            "larger box or a smaller structure."
        )
    offset = centre - step * (box // 2)  # template index of box voxel j: centre + step·(j − box//2)
    return scipy.ndimage.affine_transform(
        data, np.full(3, step), offset=offset, output_shape=(box,) * 3, order=1, mode="constant"
    ).astype(np.float32)


def rotate_and_shift(volume: np.ndarray, rotation: Rotation, shift_zyx) -> np.ndarray:
    """Rotate about the box centre (voxel n // 2) then shift (voxels), trilinear."""
    n = volume.shape[0]
    centre = np.full(3, n // 2, float)
    # Arrays are (z, y, x); rotations act on (x, y, z).
    flip = np.eye(3)[::-1]
    matrix = flip @ rotation.as_matrix() @ flip
    inverse = matrix.T
    offset = centre - inverse @ (centre + np.asarray(shift_zyx, float))
    return scipy.ndimage.affine_transform(
        volume, inverse, offset=offset, order=1, mode="constant"
    ).astype(np.float32)


def add_neighbours(
    particle: np.ndarray,
    centre_mask: np.ndarray,
    templates: list,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add ``count`` randomly rotated neighbours around a centre particle, not overlapping it.

    Neighbours are drawn from ``templates`` (boxed arrays of the same size), placed with
    their centres up to one box edge from the centre so that they are cut by the box
    as in a real crowded subtomogram, and never overlap the centre particle or each
    other (their masks, dilated by one voxel, stay apart).
    """
    n = particle.shape[0]
    out = particle.copy()
    occupied = scipy.ndimage.binary_dilation(centre_mask, iterations=1)
    placed = 0
    for _attempt in range(count * 50):
        if placed == count:
            break
        template = templates[int(rng.integers(len(templates)))]
        offset = rng.uniform(-0.75 * n, 0.75 * n, 3)
        neighbour = rotate_and_shift(template, Rotation.random(random_state=rng), offset)
        mask = neighbour > 0.1 * max(float(template.max()), 1e-12)
        if not mask.any() or (mask & occupied).any():
            continue
        out += neighbour * mask
        occupied |= scipy.ndimage.binary_dilation(mask, iterations=1)
        placed += 1
    return out


def reconstruct_clean(particle: np.ndarray, voxel_size_A: float, imaging: ImagingParams):
    """Noiseless subtomogram of ``particle`` and the tilt geometry."""
    series, angles, _ = noiseless_tilt_series(particle, voxel_size_A, imaging)
    return weighted_back_projection(series, angles, particle.shape[0]), series.shape, angles


def noise_gain(shape, angles, nz: int, rng: np.random.Generator, repeats: int = 4) -> float:
    """Variance of the WBP of unit-variance white projection noise (per voxel)."""
    values = [
        weighted_back_projection(rng.normal(size=shape).astype(np.float32), angles, nz).var()
        for _ in range(repeats)
    ]
    return float(np.mean(values))


def _add_noise(
    volumes: list, empty: list[bool], empty_var: float, gain, geometry, params
) -> list[float]:
    """Noise for the requested SNR added to each clean subtomogram in ``volumes`` (in
    place): white noise on the tilt series' geometry, back-projected like the signal,
    its level from the subtomogram's own variance (the empty class: ``empty_var``, the
    median of the others).  Returns the noise sigmas (0 without an SNR)."""
    if params.snr is None:
        return [0.0] * len(volumes)
    noise_rng = np.random.default_rng(
        params.noise_seed if params.noise_seed is not None else params.seed + 1_000_003
    )
    sigmas = []
    for i, clean in enumerate(volumes):
        var = empty_var if empty[i] else float(clean.var())
        sigma = math.sqrt(var / (params.snr * gain))
        noise = noise_rng.normal(0.0, sigma, geometry[0]).astype(np.float32)
        volumes[i] = clean + weighted_back_projection(noise, geometry[1], params.box)
        sigmas.append(sigma)
    return sigmas


def _check_structures(structures: list[str], include_empty: bool) -> None:
    """Refuse no structure, or one named twice (two classes of one name, which commands
    matching classes by name would confuse); ``empty`` counts as named when the
    noise-only class is added."""
    if not structures:
        raise ParameterError("name at least one structure.")
    repeated = sorted({name for name in structures if list(structures).count(name) > 1})
    if repeated or (include_empty and EMPTY in structures):
        raise ParameterError(
            f"each structure is one class, named once: {', '.join(repeated or [EMPTY])} "
            "is named twice (the noise-only class is called empty)."
        )


def simulate_subtomograms(
    structures: list[str],
    n_per_class: int,
    params: SubtomogramParams = SubtomogramParams(),
    templates: dict | None = None,
) -> dict:
    """Simulate a labelled subtomogram dataset.

    Parameters
    ----------
    structures : list of str
        Template names (``template_library.list_templates()``) or keys of ``templates``.
    n_per_class : int
    templates : dict, optional
        name → Volume, for maps not in the bundled library.

    Returns
    -------
    dict with ``volumes`` float32 (N, box, box, box), ``labels`` int (N,),
    ``class_names``, ``rotations`` (N, 3, 3), ``euler_zyz_deg`` and ``angles_relion_deg``
    (N, 3; conventions: module docstring), ``shifts_zyx`` (N, 3) voxels, ``noise_sigma``
    (N,), ``params``, and with ``crowded_neighbours`` > 0 ``centre_masks`` uint8 (N, box,
    box, box): the voxels of the centre particle (its density above 10% of its maximum).
    """
    params.validate()
    if n_per_class < 1:
        raise ParameterError("give at least one subtomogram per class.")
    _check_structures(structures, params.include_empty)
    rng = np.random.default_rng(params.seed)
    imaging = params.imaging()
    boxes = {}
    for name in structures:
        volume = (templates or {}).get(name) or load_template(name)
        boxes[name] = template_in_box(volume, params.voxel_size_A, params.box, name)
    class_names = list(structures) + ([EMPTY] if params.include_empty else [])

    volumes, labels, rotations, shifts, masks = [], [], [], [], []
    gain, geometry = None, None
    signal_vars = []
    for label, name in enumerate(class_names):
        for _ in range(n_per_class):
            rotation = Rotation.random(random_state=rng)
            shift = rng.uniform(-params.max_shift_voxels, params.max_shift_voxels, 3)
            if name == EMPTY:
                clean = np.zeros((params.box,) * 3, np.float32)
                shape, angles = None, None
                masks.append(np.zeros((params.box,) * 3, bool))
            else:
                particle = rotate_and_shift(boxes[name], rotation, shift)
                masks.append(particle > 0.1 * particle.max())
                if params.crowded_neighbours:
                    particle = add_neighbours(
                        particle, masks[-1], list(boxes.values()), params.crowded_neighbours, rng
                    )
                clean, shape, angles = reconstruct_clean(particle, params.voxel_size_A, imaging)
                signal_vars.append(float(clean.var()))
            volumes.append(clean)
            labels.append(label)
            rotations.append(rotation.as_matrix())
            shifts.append(shift)
            if gain is None and shape is not None:
                gain = noise_gain(shape, angles, params.box, np.random.default_rng(0))
                geometry = (shape, angles)
    empty = [class_names[label] == EMPTY for label in labels]
    sigmas = _add_noise(volumes, empty, float(np.median(signal_vars)), gain, geometry, params)
    rot = np.array(rotations)
    extra = {"centre_masks": np.stack(masks).astype(np.uint8)} if params.crowded_neighbours else {}
    return {
        **extra,
        "volumes": np.stack(volumes).astype(np.float32),
        "labels": np.array(labels),
        "class_names": class_names,
        "rotations": rot,
        "euler_zyz_deg": Rotation.from_matrix(rot).as_euler("ZYZ", degrees=True),
        "angles_relion_deg": to_euler(Rotation.from_matrix(rot)).reshape(-1, 3),
        "shifts_zyx": np.array(shifts),
        "noise_sigma": np.array(sigmas),
        "params": asdict(params),
    }


#: What each array of a dataset's store holds, kept in its zarr attributes
#: (``description``): a user opening the store with zarr alone reads which rotation
#: convention each angle array follows (a trial took ``euler_zyz_deg``, scipy's angles
#: of the template → particle matrix, for RELION's, which describe its inverse).
ARRAY_DESCRIPTIONS = {
    "volumes": "subtomograms (N, z, y, x), float32, voxel size in the group's params",
    "labels": "class index (N,) into the group's class_names",
    "rotations": "rotation matrices (N, 3, 3) turning the template into the particle, "
    "acting on (x, y, z) column vectors",
    "euler_zyz_deg": "scipy Rotation.from_matrix(rotations).as_euler('ZYZ', degrees=True): "
    "intrinsic ZYZ angles (degrees) of the template-to-particle rotation; not RELION's",
    "angles_relion_deg": "RELION rlnAngleRot, rlnAngleTilt, rlnAnglePsi (degrees) of each "
    "particle, as a RELION particle file writes them",
    "shifts_zyx": "shift (voxels, z, y, x) of each particle from the box centre",
    "noise_sigma": "standard deviation of the projection noise added (per subtomogram)",
    "centre_masks": "voxel mask (N, z, y, x) of the centre particle (crowded datasets)",
}


def save_dataset(path: str | os.PathLike, dataset: dict) -> Path:
    """Write a dataset as one zarr store (atomically): arrays, each described in its
    attributes (:data:`ARRAY_DESCRIPTIONS`), plus JSON attributes of the group."""
    from ..io.zarrstore import open_group, write_array

    with atomic_path(path) as tmp:
        group = open_group(tmp, mode="w")
        for key, description in ARRAY_DESCRIPTIONS.items():
            if key not in dataset:
                continue
            value = np.asarray(dataset[key])
            chunks = (min(64, value.shape[0]),) + value.shape[1:]
            write_array(group, key, value, chunks).attrs["description"] = description
        group.attrs["tomoscribe_subtomograms"] = json.dumps(
            {
                "class_names": dataset["class_names"],
                "params": dataset["params"],
                "acquisition": _acquisition(dataset["params"]),
                "format_version": 1,
            }
        )
    return Path(path)


def _acquisition(params: dict) -> dict:
    """The dataset's acquisition record (core/acquisition.py): ±max tilt, voxel size."""
    max_tilt = float(params.get("max_tilt_deg", SubtomogramParams.max_tilt_deg))
    return Acquisition((-max_tilt, max_tilt), params.get("voxel_size_A")).as_dict()


def load_dataset(path: str | os.PathLike) -> dict:
    """Read a dataset written by :func:`save_dataset` (arrays loaded lazily as zarr)."""
    from ..io.zarrstore import open_group

    path = Path(path)
    if not path.exists():
        raise missing_file(path)
    try:
        group = open_group(path, mode="r")
        meta = json.loads(group.attrs["tomoscribe_subtomograms"])
        data = {key: group[key] for key in ARRAY_DESCRIPTIONS if key in group}
    except Exception as err:  # zarr and json raise many types for damaged stores
        raise InputFileError(f"{path} is not a tomoscribe subtomogram dataset ({err}).") from err
    data.update(meta)
    return data
