"""npe2 reader: tomograms, label maps and particle files as napari layers in Å.

Every layer gets ``scale`` = the voxel size and ``translate`` = the origin (z, y, x, Å),
so files of different voxel sizes line up.  MRC files stay memory-mapped and OME-Zarr
chunked (tomoscribe.io opens them lazily), with every level of a multiscale OME-Zarr.
A label map with a ``.legend.json`` becomes a labels layer coloured and named by its
legend; a particle file becomes points (positions in voxels scaled by the file's pixel
size; a particle file records no origin), with RELION Euler angles (rot, tilt, psi) as
point features where the file has them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingVoxelSizeError, TomoscribeError

_VOLUMES = (".mrc", ".rec", ".map", ".st", ".zarr", ".tif", ".tiff")
_PARTICLES = (".star", ".mod")


def get_reader(path):
    """The reading function for ``path``, or None where this plugin does not read it."""
    if isinstance(path, list):
        return None
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    if suffix in _VOLUMES or suffix in _PARTICLES:
        return read_layers
    return None


def scale_translate(volume, cubic: bool = False) -> tuple[tuple, tuple]:
    """napari ``scale`` and ``translate`` (z, y, x, Å) of a tomoscribe Volume.

    ``cubic``: every axis at the x voxel size, as tomoscribe's commands take a
    tomogram's voxels (io.mrc warns of any other): the annotation widget shows its
    layers so, or a tomogram of 10 × 10 × 20 Å voxels was drawn twice as deep as the
    picks it exported placed its particles (a napari trial)."""
    sizes = volume.voxel_size_A[::-1]
    if cubic:
        sizes = (volume.voxel_size_A[0],) * 3
    return tuple(float(v) for v in sizes), tuple(float(v) for v in volume.origin_A[::-1])


def legend_colormap(legend) -> dict:
    """napari's label colour dict {id: colour} from a merge legend (0 transparent)."""
    colours = {None: "transparent", 0: "transparent"}
    for label, entry in legend:
        if label != 0:
            colours[label] = entry.colour or "#ffffff"
    return colours


def pyramid(path, volume) -> list | None:
    """The lower-resolution levels of an OME-Zarr multiscale image after its first
    (which ``volume`` holds), as napari's multiscale data; None for one level.

    Levels must shrink in every axis; a store whose extra levels cannot be read or do
    not shrink opens at full resolution only.
    """
    if Path(str(path).rstrip("/")).suffix.lower() != ".zarr":
        return None
    from ..io.zarr import ngff_attributes
    from ..io.zarrstore import open_group

    try:
        group = open_group(path)
        datasets = ngff_attributes(dict(group.attrs))["multiscales"][0]["datasets"]
        levels = [volume.data] + [group[d["path"]] for d in datasets[1:]]
    except (KeyError, IndexError, TypeError, ValueError, OSError):
        return None
    shapes = [tuple(level.shape) for level in levels]
    if len(levels) < 2 or any(
        len(b) != 3 or not all(y <= x for x, y in zip(a, b)) for a, b in zip(shapes, shapes[1:])
    ):
        return None
    return levels


def volume_layer(path, voxel_size_A: float | None = None) -> tuple:
    """(data, kwargs, type) of one volume file: labels with a legend, else an image."""
    from ..core.legend import read_legend
    from ..io import read_volume

    volume = read_volume(path, voxel_size_A)
    scale, translate = scale_translate(volume)
    name = Path(str(path).rstrip("/")).name
    legend = read_legend(Path(path))
    meta = {"path": str(path), "voxel_size_A": volume.voxel_size_A, "origin_A": volume.origin_A}
    levels = pyramid(path, volume)
    data = levels if levels is not None else volume.data
    if legend is not None:
        from napari.utils.colormaps import DirectLabelColormap

        meta["legend"] = legend.as_dict()
        return (
            data,
            {
                "name": name,
                "scale": scale,
                "translate": translate,
                "metadata": meta,
                "multiscale": levels is not None,
                "colormap": DirectLabelColormap(color_dict=legend_colormap(legend)),
            },
            "labels",
        )
    return (
        data,
        {
            "name": name,
            "scale": scale,
            "translate": translate,
            "metadata": meta,
            "multiscale": levels is not None,
        },
        "image",
    )


def particles_layers(path, voxel_size_A: float | None = None, tomogram=None) -> list[tuple]:
    """(data, kwargs, "points") per tomogram of a particle file, positions (z, y, x) in
    voxels drawn with the ``scale`` and ``translate`` (Å) of the tomogram they belong to
    (:func:`tomoscribe.io.placement.place_particles`): ``tomogram`` (a Volume) when
    given, else the tomogram of that name open in the viewer, else what the file
    records (an IMOD model its image's spacing and origin; a STAR file its pixel size,
    from 0 Å).  A file listing several tomograms gives one layer each."""
    from ..io.placement import grid_of_volume, place_particles

    grid = None if tomogram is None else grid_of_volume(tomogram)
    placed = place_particles(
        path, voxel_size_A, grid=grid, grid_of=None if grid is not None else open_tomogram
    )
    name = Path(str(path)).name
    layers = []
    for item in placed:
        table = item.table
        features = {c: table[c].to_numpy() for c in ("rot", "tilt", "psi", "score") if c in table}
        meta = {"path": str(path), "placement": item.how}
        if item.tomo_name is not None:
            meta["tomo_name"] = item.tomo_name
        layers.append(
            (
                table[["z", "y", "x"]].to_numpy(float),
                {
                    "name": f"{name}: {item.tomo_name}" if len(placed) > 1 else name,
                    "scale": item.scale_zyx,
                    "translate": item.translate_zyx,
                    "size": 8,
                    "features": features,
                    "metadata": meta,
                },
                "points",
            )
        )
    return layers


def open_tomogram(tomo_name: str | None):
    """The grid (:class:`tomoscribe.io.placement.Grid`) of the one 3D image layer open in
    napari's current viewer whose file (or layer) name is the tomogram ``tomo_name``
    (compared without file suffixes, as ``TS_01.tomostar`` names ``TS_01.mrc``), or,
    for ``tomo_name`` None (an IMOD model names no tomogram), of the only 3D image
    layer; None when no viewer is open or no layer, or more than one, matches."""
    import napari
    from napari.layers import Image

    from ..io.particles import tomogram_stem
    from ..io.placement import Grid

    viewer = napari.current_viewer()
    if viewer is None:
        return None
    wanted = None if tomo_name is None else tomogram_stem(tomo_name)
    found = [
        layer
        for layer in viewer.layers
        if isinstance(layer, Image)
        and layer.ndim == 3
        and (wanted is None or tomogram_stem(layer.metadata.get("path") or layer.name) == wanted)
    ]
    if len(found) != 1:
        return None
    layer = found[0]
    level = layer.data[0] if layer.multiscale else layer.data
    return Grid(
        tuple(float(v) for v in layer.scale[::-1]),
        tuple(float(v) for v in layer.translate[::-1]),
        tuple(int(s) for s in level.shape),
        layer.name,
    )


def _check_not_one_section(path) -> None:
    """Refuse (ValueError) a file without a voxel size that holds one 2D image, in the
    words the widget would use, before sending the user there for its voxel size (a
    trial went round: asked for a voxel size, then refused as 2D)."""
    from ..io import read_volume
    from ..volume import check_is_tomogram

    try:
        check_is_tomogram(read_volume(path, 1.0), Path(str(path).rstrip("/")).name)
    except TomoscribeError as err:
        raise ValueError(str(err)) from None


def read_layers(path, voxel_size_A: float | None = None) -> list[tuple]:
    """Layers of one file (what napari's File > Open shows)."""
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    try:
        if suffix in _PARTICLES:
            try:
                return particles_layers(path, voxel_size_A)
            except MissingVoxelSizeError as err:  # its own sentence: open the tomogram
                raise ValueError(str(err)) from None
        return [volume_layer(path, voxel_size_A)]
    except MissingVoxelSizeError:  # File > Open cannot ask; the widget can
        _check_not_one_section(path)  # the widget would refuse it: not sent there
        raise ValueError(
            f"{Path(str(path).rstrip('/')).name} records no voxel size; open it with "
            "Plugins > Annotate (tomoscribe), entering the voxel size under "
            "'Voxel size (Å)'."
        ) from None
    except TomoscribeError as err:  # shown by napari as a notification
        raise ValueError(str(err)) from None
