"""CLEM on images made otherwise than by the correlative simulator (a trial's own film,
cells and files): Quantifoil R2/2 and R1.2/1.3 lattices turned 8°, torn holes beside
the cell, fluorescence 130 nm/pixel turned 17°, multi-channel TIFFs as microscopes and
tifffile write them.  Each scene is drawn from one analytic description in overview
pixels, so the true fluorescence → overview map is known exactly."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import mrcfile
import numpy as np
import pytest
import scipy.ndimage
import tifffile

from tomoscribe.cli.app import main

OV_NM, FM_NM = 100.0, 130.0  # overview and fluorescence pixel sizes
OV_SIZE, FM_SIZE = 256, 200


@dataclass
class Film:
    """A holey film and one cell, in overview pixels (100 nm)."""

    hole_um: float = 2.0
    pitch_um: float = 4.0
    turn_deg: float = 8.0
    torn: list = field(default_factory=list)  # (x, y, radius) of holes torn into the film
    cell: tuple = (128.0, 124.0, 70.0, 52.0)  # ellipse centre x, y and half-axes (pixels)
    band: float | None = None  # instead: a band this wide (pixels) along the lattice

    def hole(self, x, y):
        """Inside a hole of the lattice, or a torn one."""
        pitch, radius = self.pitch_um * 10, self.hole_um * 5
        turn = np.radians(self.turn_deg)
        u = np.cos(turn) * (x - 3.3) + np.sin(turn) * (y - 5.1)
        v = -np.sin(turn) * (x - 3.3) + np.cos(turn) * (y - 5.1)
        du, dv = u - pitch * np.round(u / pitch), v - pitch * np.round(v / pitch)
        inside = np.hypot(du, dv) < radius
        for tx, ty, tr in self.torn:
            inside |= np.hypot(x - tx, y - ty) < tr
        return inside

    def thickness(self, x, y):
        """The cell's thickness (0–1): a dome on an ellipse with a thinner lobe off one
        side (no symmetry of the lattice maps the cell onto itself)."""
        cx, cy, ax, ay = self.cell
        if self.band is not None:  # the same along a lattice direction: no step shows
            turn = np.radians(self.turn_deg)
            across = -np.sin(turn) * (x - cx) + np.cos(turn) * (y - cy)
            return np.sqrt(np.clip(1 - (2 * across / self.band) ** 2, 0, None))
        body = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
        lobe = ((x - cx - 0.8 * ax) / (0.45 * ax)) ** 2 + ((y - cy + 0.7 * ay) / (0.4 * ay)) ** 2
        return np.maximum(
            np.sqrt(np.clip(1 - body, 0, None)), 0.6 * np.sqrt(np.clip(1 - lobe, 0, None))
        )


def _fm_to_ov(mirror=False):
    """Fluorescence pixels → overview pixels: 1.3×, turned 17°, shifted."""
    turn, scale = np.radians(17.0), FM_NM / OV_NM
    linear = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    if mirror:
        linear = linear @ np.diag([-1.0, 1.0])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    centre = np.array([FM_SIZE / 2, FM_SIZE / 2])
    matrix[:2, 2] = np.array([131.0, 122.0]) - linear @ centre
    return matrix


def _render(film: Film, seed: int = 0, mirror=False) -> dict:
    """Overview (holes bright, the cell dimming them), reflection (holes dark) and cell
    stain, with noise; supersampled twice."""
    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[0 : OV_SIZE * 2, 0 : OV_SIZE * 2] + 0.5) / 2 - 0.5
    hole, thick = film.hole(x, y), film.thickness(x, y)
    bright = np.where(hole, 3000.0, 1600.0) * np.exp(-1.2 * thick)
    overview = bright.reshape(OV_SIZE, 2, OV_SIZE, 2).mean((1, 3))
    overview += rng.normal(0, 40, overview.shape)
    matrix = _fm_to_ov(mirror)
    fy, fx = (np.mgrid[0 : FM_SIZE * 2, 0 : FM_SIZE * 2] + 0.5) / 2 - 0.5
    ox = matrix[0, 0] * fx + matrix[0, 1] * fy + matrix[0, 2]
    oy = matrix[1, 0] * fx + matrix[1, 1] * fy + matrix[1, 2]
    reflection = np.where(film.hole(ox, oy), 300.0, 1000.0)
    stain = 200.0 + 1500.0 * film.thickness(ox, oy)  # dye as deep as the cell

    def fm(image):
        image = image.reshape(FM_SIZE, 2, FM_SIZE, 2).mean((1, 3))
        image = scipy.ndimage.gaussian_filter(image, 1.2)
        return (image + rng.normal(0, 20, image.shape)).astype(np.float32)

    return {
        "overview": overview.astype(np.float32),
        "reflection": fm(reflection),
        "cell": fm(stain),
        "matrix": matrix,
    }


def _error_nm(record_path, matrix) -> float:
    """The largest distance (nm) between true and registered overview positions of
    points spread over the fluorescence field."""
    found = np.asarray(json.loads(record_path.read_text())["matrix"], float)
    grid = np.array([(x, y, 1.0) for x in (40, 100, 160) for y in (40, 100, 160)]).T
    return float(np.abs(found @ grid - matrix @ grid)[:2].max() * OV_NM)


def _write_mrc(path, data, pixel_A):
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.asarray(data, np.float32)[None] if data.ndim == 2 else data)
        mrc.voxel_size = pixel_A
    return path


def _files(folder, scene) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "overview": _write_mrc(folder / "overview.mrc", scene["overview"], 10 * OV_NM),
        "reflection": _write_mrc(folder / "reflection.mrc", scene["reflection"], 10 * FM_NM),
        "cell": _write_mrc(folder / "cell.mrc", scene["cell"], 10 * FM_NM),
    }


def _register(files, out, *flags):
    argv = ["clem", "register", str(files["overview"]), str(files["reflection"])]
    return main([*argv, "--cell", str(files["cell"]), "-o", str(out), *flags])


R22 = ["--hole-diameter", "2", "--hole-spacing", "4"]


@pytest.mark.parametrize(
    "film, flags",
    [
        # a torn hole between lattice holes at the field's centre: it was the detection
        # nearest the centre in both images, the lattice was drawn through it, and
        # "only 3 of 34 holes fit a lattice" refused the pair
        (Film(torn=[(128.0, 126.0, 7.0)]), R22),
        # torn holes beside the cell's thin edge: its stain there read as off the cell's
        # shadow (1.06 % > 0.5 %), "not the same grid square"
        (Film(torn=[(60.0, 118.0, 9.0), (196.0, 130.0, 9.0)]), R22),
        # R1.2/1.3 film given right (the trial's was refused at 0.80 %; this one was
        # flagged ambiguous, margin 1.01–1.02, where its runner-up left 12% off)
        (Film(hole_um=1.2, pitch_um=2.5), ["--hole-diameter", "1.2", "--hole-spacing", "2.5"]),
    ],
    ids=["torn-centre", "torn-edges", "R1.2/1.3"],
)
def test_a_right_pair_registers_within_tens_of_nm_and_unflagged(tmp_path, capsys, film, flags):
    scene = _render(film)
    files = _files(tmp_path, scene)
    out = tmp_path / "reg.json"
    assert _register(files, out, *flags) == 0, capsys.readouterr().err
    assert _error_nm(out, scene["matrix"]) < 30.0
    err = capsys.readouterr().err
    assert "barely prefers" not in err and "warning" not in err  # right: nothing to say


def test_a_wrong_hole_diameter_is_said_with_what_the_holes_measure(tmp_path, capsys):
    """3 µm given for 2 µm holes: the registration (some 100–250 nm off) was written
    with exit 0 and no word but the routine ambiguity warning."""
    scene = _render(Film())
    files = _files(tmp_path, scene)
    out = tmp_path / "reg.json"
    code = _register(files, out, "--hole-diameter", "3", "--hole-spacing", "4")
    err = capsys.readouterr().err
    assert code == 0  # a registration, written, with what is wrong with it said
    said = re.search(r"the holes in overview.mrc measure (\S+) µm across, where (\S+) gives 3", err)
    assert said and 1.6 <= float(said[1]) <= 2.1 and said[2] == "--hole-diameter"
    record = json.loads(out.read_text())
    measured = record["hole_diameter_measured_um"]
    assert 1.6 <= measured["overview"] <= 2.1 and 1.6 <= measured["fluorescence"] <= 2.1
    assert "matched between the images fit the transform" in err


def test_refusals_name_the_image_and_the_spacing_its_holes_show(tmp_path, capsys):
    """The default 3 µm spacing on 4 µm film, and a reflection image of no holes."""
    scene = _render(Film())
    files = _files(tmp_path, scene)
    out = tmp_path / "reg.json"
    assert _register(files, out, "--hole-diameter", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: overview.mrc: ") or err.startswith("error: reflection.mrc: ")
    assert "a median 4 µm apart; --hole-spacing is 3" in err and not out.exists()
    _write_mrc(files["reflection"].with_name("blank.mrc"), np.ones((FM_SIZE, FM_SIZE)), 1300.0)
    blank = {**files, "reflection": files["reflection"].with_name("blank.mrc")}
    assert _register(blank, out, *R22) == 2
    assert capsys.readouterr().err.startswith("error: blank.mrc: only 0 holes were detected")


def test_a_wrong_fluorescence_pixel_size_is_told_what_the_holes_measure(tmp_path, capsys):
    scene = _render(Film())
    files = _files(tmp_path, scene)
    out = tmp_path / "reg.json"
    assert _register(files, out, *R22, "--fluorescence-pixel-size", "1000") == 2
    err = capsys.readouterr().err
    assert re.search(
        r"the holes scale the fluorescence's pixels to the overview's by 1\.3\d* "
        r"where the pixel sizes give 1 \(\+30%\)",
        err,
    )


def test_multichannel_tiffs_are_read_by_the_channel_chosen(tmp_path, capsys):
    """Reflection and cell stain in one file, as tifffile writes them without metadata
    (channels first, channels last) and as an ImageJ hyperstack (ZCYX) of one slice
    with the pixel size: each registers with --channel/--cell-channel as the separate
    files do; without a channel, channels are refused in one sentence, never read as z
    or as x (a channel-last file gave `watershed` a 200×200×2 label map, exit 0)."""
    scene = _render(Film())
    files = _files(tmp_path, scene)
    two = np.stack([scene["reflection"], scene["cell"]])
    first, last, hyper = (tmp_path / f"{n}.tif" for n in ("first", "last", "hyper"))
    tifffile.imwrite(first, two)
    tifffile.imwrite(last, np.moveaxis(two, 0, -1))
    per_um = 1000.0 / FM_NM  # ImageJ's resolution: pixels per µm
    tifffile.imwrite(
        hyper,
        two[None].astype(np.float32),
        imagej=True,
        resolution=(per_um, per_um),
        metadata={"axes": "ZCYX", "unit": "um"},
    )
    base = ["clem", "register", str(files["overview"])]
    errors = []
    for path in (first, last, hyper):
        pixel = [] if path == hyper else ["--fluorescence-pixel-size", str(10 * FM_NM)]
        out = tmp_path / f"{path.stem}.json"
        argv = [*base, str(path), "--cell", str(path), "-o", str(out), *R22, *pixel]
        assert main(argv) == 2 and not out.exists()
        errors.append(capsys.readouterr().err)
        assert main([*argv, "--channel", "0", "--cell-channel", "1"]) == 0
        capsys.readouterr()
        assert _error_nm(out, scene["matrix"]) < 30.0
    assert (
        "holds 2 images of 200×200 pixels and does not say whether they are channels" in (errors[0])
    )
    assert "choose one with --channel 0..1" in errors[0]
    assert "(2 channels, axes YXC); choose one with --channel 0..1." in errors[1]
    # the watershed of a channel-last file: refused, then its chosen channel
    labels = tmp_path / "cell_regions.mrc"
    shed = ["clem", "watershed", str(last), "-o", str(labels), "--fluorescence-pixel-size", "1300"]
    assert main(shed) == 2 and not labels.exists()
    assert "--channel 0..1" in capsys.readouterr().err
    assert main([*shed, "--channel", "1"]) == 0
    assert np.squeeze(mrcfile.read(labels)).shape == (FM_SIZE, FM_SIZE)


def test_a_cell_that_fits_two_matches_is_flagged(tmp_path, capsys):
    """A band of cell along a lattice direction, across the whole field, fits the match
    one lattice step along it as well as the right one, so the anchor cannot tell them
    apart: flagged, with landmarks advised."""
    scene = _render(Film(band=60.0))
    files = _files(tmp_path, scene)
    out = tmp_path / "reg.json"
    assert _register(files, out, *R22) == 0
    assert "barely prefers this lattice match" in capsys.readouterr().err
    anchor = json.loads(out.read_text())["anchor"]
    assert anchor["ambiguous"] and anchor["runner_up_off_shadow_fraction"] <= 0.005


def test_short_stacks_stay_stacks_outside_clem_and_one_channel_inputs_say_so(tmp_path, capsys):
    """A review: a 3-page TIFF written page by page (no axis names) was refused by every
    command once unnamed short axes were taken for channels; only CLEM's fluorescence
    reads take them so.  An RGB overview was told to use --channel, which chooses the
    reflection's channel."""
    from tomoscribe.errors import InputFileError
    from tomoscribe.io import read_volume
    from tomoscribe.io.tiff import unnamed_channels_expected

    pages = tmp_path / "pages.tif"
    with tifffile.TiffWriter(pages) as tif:
        for k in range(3):
            tif.write(np.full((32, 32), k, np.float32), metadata=None)  # axes IYX
    assert read_volume(pages, 10.0).shape == (3, 32, 32)  # a short stack, as before
    with unnamed_channels_expected(), pytest.raises(InputFileError, match="channels or slices"):
        read_volume(pages, 10.0)
    scene = _render(Film())
    files = _files(tmp_path, scene)
    rgb = tmp_path / "overview_rgb.tif"
    grey = np.clip(scene["overview"] / 16, 0, 255).astype(np.uint8)
    tifffile.imwrite(rgb, np.stack([grey] * 3, axis=-1), photometric="rgb")
    argv = ["clem", "register", str(rgb), str(files["reflection"]), "--cell", str(files["cell"])]
    assert main([*argv, "-o", str(tmp_path / "r.json"), *R22, "--overview-pixel-size", "1000"]) == 2
    err = capsys.readouterr().err
    assert "holds several channels or colours, and this input takes one" in err
    assert "--channel" not in err
