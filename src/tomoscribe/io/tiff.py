"""TIFF stacks through tifffile.

A multi-page TIFF is read as (z, y, x).  The voxel size comes from ImageJ metadata
(``unit`` with ``spacing`` and the resolution tags), else from OME-XML's physical sizes
(OME-TIFF), else, for a single image, from resolution tags in centimetres; otherwise it
must be given (``--voxel-size``).  The units are read as written, with ImageJ's
escapes of Å and µm; the OME-XML's few attributes are read with the standard library's
XML parser.  Uncompressed files are memory-mapped.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputFileError, MissingVoxelSizeError, ParameterError, missing_file
from ..outputs import atomic_path
from ..said import first_time
from ..volume import Volume, check_voxel_type, physical_memory_bytes
from .mrc import MRCWarning, check_cubic

#: Length units ImageJ writes, in Å.
_UNIT_A = {
    "angstrom": 1.0,
    "a": 1.0,
    "\u00e5": 1.0,  # Å, lower-cased (the units are compared lower-case)
    "\u212b": 1.0,  # the Ångström sign
    "nm": 10.0,
    "nanometer": 10.0,
    "nanometre": 10.0,
    "micron": 1e4,
    "um": 1e4,
    "\u00b5m": 1e4,  # micro sign
    "\u03bcm": 1e4,  # Greek mu
    "microns": 1e4,
    "micrometer": 1e4,
    "micrometre": 1e4,
    "mm": 1e7,
    "cm": 1e8,
}
#: The largest pixel (Å) a TIFF's resolution tags are believed for: 10 µm.  Image
#: programs set to metric units write their screen density in cm (72 dpi is 28.35
#: px/cm, 353 µm pixels); no micrograph, overview or fluorescence image is that coarse.
MAX_TAGGED_PIXEL_A = 1e5
#: TIFF's ResolutionUnit (baseline 2 inch, 3 cm; tifffile's 4 mm, 5 µm) in Å: pixels
#: per inch are what every image program writes (72 dpi), not a microscope's size.
_RESOLUTION_UNIT_A = {3: 1e8, 4: 1e7, 5: 1e4}


def read_tiff(
    path: str | os.PathLike, voxel_size_A: float | None = None, channel: int | None = None
) -> Volume:
    """Read a TIFF stack as a :class:`Volume`.

    Parameters
    ----------
    path : path
        A single-page (2D) or multi-page (3D) TIFF.
    voxel_size_A : float, optional
        Voxel size (Å) when the file records none (or to override it).
    channel : int, optional
        For colour (RGB/RGBA) or multi-channel images: which sample or channel to
        read.  Such images are refused without it rather than read as a volume a few
        voxels wide.

    Raises
    ------
    InputFileError
        If the file is unreadable, not 2D/3D, a colour image without ``channel``, or
        has no voxel size and none is given.
    ParameterError
        If ``channel`` is outside the image's channels.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        with tifffile.TiffFile(path) as tif:
            # Index every page first: tifffile walks the page chain with a check for
            # circular references here, whereas iterating a damaged chain lazily (as
            # tif.series and tifffile.memmap do on a fresh file) can loop forever.
            len(tif.pages)
            found = _voxel_size(tif)
            unusual = [] if voxel_size_A is not None else _z_spacing_unrecorded(tif, found)
            series = tif.series[0]
            axes = series.axes.upper()
            data = _memmap_series(path, tif, series)
            if data is None:
                _check_fits_in_memory(path, series)
                _check_segments(path, tif)
                data = series.asarray()
    except InputFileError:
        raise
    except Exception as err:  # tifffile and its codecs raise many types on damage
        raise InputFileError(
            f"{path} is not a readable TIFF file ({type(err).__name__}: {_first_line(err)})."
        ) from err
    data = np.asarray(data) if not isinstance(data, np.memmap) else data
    axes = _unlabelled_channel_axes(path, data.shape, axes, channel)
    data = _select_channel(path, data, axes, channel)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise InputFileError(
            f"{path} holds a {data.ndim}D image with shape {data.shape} (axes {axes}); give a "
            "single-channel (z, y, x) stack."
        )
    if voxel_size_A is not None:
        vs = (float(voxel_size_A),) * 3
    elif found is not None:
        vs = found
    else:
        raise MissingVoxelSizeError(
            f"{path} does not record a voxel size; pass `voxel_size_A`.", parameter="voxel_size_A"
        )
    check_voxel_type(path, data.dtype)
    if voxel_size_A is None:  # as MRC files are read: said once per command run
        check_cubic(path, data.shape, np.asarray(vs, float), unusual)
    if unusual and first_time(path, tuple(unusual)):
        warnings.warn(
            f"{path} was read although {'; '.join(unusual)}; check the result.",
            MRCWarning,
            stacklevel=2,
        )
    return Volume(data, vs, (0.0, 0.0, 0.0), metadata={"source": str(path), "format": "tiff"})


def _z_spacing_unrecorded(tif, found) -> list[str]:
    """A sentence when an ImageJ stack of several slices records x and y sizes but no z
    spacing (``spacing``), so that z is taken as x (ImageJ itself takes 1 unit)."""
    meta = tif.imagej_metadata or {}
    if found is None or "spacing" in meta or int(meta.get("slices", 1) or 1) < 2:
        return []
    if _voxel_size_from_imagej(tif) is None:  # the size came from elsewhere (OME-XML)
        return []
    return [
        f"its ImageJ metadata give x and y ({found[0]:g} Å) but no z spacing, so z is taken "
        "as x; if the slices are further apart, give the voxel size in z (ImageJ: Image > "
        "Properties, voxel depth) or resample"
    ]


def _memmap_series(path: Path, tif, series) -> np.memmap | None:
    """The series memory-mapped when its data are stored contiguously and uncompressed
    (what ``tifffile.memmap`` does, but on the handle already opened and indexed)."""
    offset = series.dataoffset
    if offset is None or series.dtype is None:
        return None
    dtype = np.dtype(tif.byteorder + series.dtype.char)
    shape = tuple(int(n) for n in series.shape)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    size = path.stat().st_size
    if offset + nbytes > size or nbytes == 0:
        raise InputFileError(
            f"{path} is truncated: its image data ({nbytes} bytes from byte "
            f"{offset}) run past the end of the file ({size} bytes)."
        )
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _check_segments(path: Path, tif) -> None:
    """Refuse pages that list fewer strips or tiles than their size needs.

    tifffile pads the missing ones and then walks every segment the size implies, so a
    damaged image length can make it build hundreds of millions of empty segments.
    """
    for index, page in enumerate(tif.pages):
        chunked = getattr(page, "chunked", None)
        offsets = getattr(page, "dataoffsets", None)
        if not chunked or offsets is None:
            continue
        needed = int(np.prod(chunked, dtype=object))
        if needed > len(offsets):
            raise InputFileError(
                f"{path} is damaged: page {index} lists {len(offsets)} strips or tiles where "
                f"its size ({tuple(page.shape)}) needs {needed}."
            )


def _check_fits_in_memory(path: Path, series) -> None:
    """Refuse to decode (compressed or tiled) image data larger than half the memory.

    Only uncompressed TIFFs are memory-mapped; others are decoded whole, and a damaged
    header can claim any size.
    """
    nbytes = int(np.prod(series.shape, dtype=object)) * np.dtype(series.dtype).itemsize
    memory = physical_memory_bytes()
    if nbytes > memory // 2:
        raise InputFileError(
            f"{path} is compressed and would need {nbytes / 2**30:.1f} GiB in memory (its "
            f"shape is {tuple(series.shape)}); save it uncompressed so it can be "
            "memory-mapped, or convert it to MRC."
        )


#: The most channels a TIFF without axis names is taken to hold along a short first or
#: last axis (a fluorescence microscope's 2–4 colours), where the other two are at least
#: :data:`MIN_IMAGE_SIDE` pixels.
MAX_UNLABELLED_CHANNELS = 4
MIN_IMAGE_SIDE = 16

_CHANNELS_FIRST_EXPECTED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tomoscribe_channels_first", default=False
)


@contextlib.contextmanager
def unnamed_channels_expected() -> Iterator[None]:
    """Within it, a TIFF without axis names that holds 2–4 images is taken for channels
    (refused without ``channel``), not for a short stack: for readers of fluorescence
    images (CLEM), where a stack that short is not met and two-colour files are; every
    other reader takes such a file as the slices it was before (a review: a 3-page
    TIFF written page by page is a volume to them)."""
    token = _CHANNELS_FIRST_EXPECTED.set(True)
    try:
        yield
    finally:
        _CHANNELS_FIRST_EXPECTED.reset(token)


def _unlabelled_channel_axes(path: Path, shape: tuple, axes: str, channel: int | None) -> str:
    """The axes of a 3D TIFF that names none of its axes (no ImageJ, OME or colour
    tags: tifffile's ``Q`` and ``I``) and is short along its first or last axis: channels
    there (``C``).  A trial's two-colour fluorescence images, written by tifffile without
    metadata, were read with their channels as two z slices (channel first) or as an
    x two pixels wide (channel last: ``watershed`` wrote a 200×200×2 label map, exit 0).
    Channels last are taken as channels everywhere; channels first only within
    :func:`unnamed_channels_expected` (elsewhere they could be a short stack), and there
    without ``channel`` they are refused, saying how to mark slices."""
    if len(shape) != 3 or len(axes) != 3 or not set(axes) <= set("QIYX"):
        return axes  # named axes (ImageJ's, OME's: Z, C, T, S) are taken as named
    if shape[-1] <= MAX_UNLABELLED_CHANNELS and min(shape[:2]) >= MIN_IMAGE_SIDE:
        return "YXC"
    first = shape[0] <= MAX_UNLABELLED_CHANNELS and min(shape[1:]) >= MIN_IMAGE_SIDE
    if first and (_CHANNELS_FIRST_EXPECTED.get() or channel is not None):
        if channel is None and shape[0] > 1:
            raise InputFileError(
                f"{path} holds {shape[0]} images of {shape[2]}×{shape[1]} pixels and does "
                "not say whether they are channels or slices (it has no ImageJ or OME "
                f"metadata); if channels, choose one with `channel=0..{shape[0] - 1}`; if "
                "the slices of one volume, save it with them named (tifffile.imwrite(…, "
                "imagej=True, metadata={'axes': 'ZYX'}), or Fiji).",
                parameter="channel",
            )
        return "CYX"
    return axes


def _select_channel(path: Path, data: np.ndarray, axes: str, channel: int | None) -> np.ndarray:
    """Drop the colour-sample (S) or channel (C) axes, choosing ``channel`` where needed."""
    if len(axes) != data.ndim:
        axes = ""  # tifffile shaped the array otherwise: no channel axis to trust
    index_of = [i for i, a in enumerate(axes) if a in "SC"]
    wide = [i for i in index_of if data.shape[i] > 1]
    if not wide and channel not in (None, 0):
        raise ParameterError(
            f"{path} has a single channel; `channel={channel}` does not "
            "exist (leave it out or give 0).",
            parameter="channel",
        )
    if len(wide) > 1:
        raise InputFileError(
            f"{path} has both colour samples and channels (axes {axes}, "
            f"shape {data.shape}); save the channel you want on its own."
        )
    if wide:
        count = data.shape[wide[0]]
        kind = "colour samples per pixel" if axes[wide[0]] == "S" else "channels"
        if channel is None:
            slices = (  # a trial's mask, written as tifffile writes a 3D array to ImageJ
                ", or, if they are the slices of one volume (tifffile.imwrite(…, "
                "imagej=True) writes a 3D array as channels unless given metadata="
                "{'axes': 'ZYX'}), save it again with that"
                if axes[wide[0]] == "C" and "Z" not in axes and wide[0] == 0
                else ""
            )
            raise InputFileError(
                f"{path} is a colour or multi-channel image ({count} {kind}, axes {axes}); "
                f"choose one with `channel=0..{count - 1}`{slices}.",
                parameter="channel",
            )
        if not 0 <= channel < count:
            raise ParameterError(
                f"{path} has {count} {kind}; `channel={channel}` is not among 0..{count - 1}.",
                parameter="channel",
            )
    for index in reversed(index_of):  # basic indexing: memory maps stay memory maps
        data = data[(slice(None),) * index + (channel if index in wide else 0,)]
    return data


def _first_line(err: Exception) -> str:
    text = str(err).strip().rstrip(".")
    return text.splitlines()[0] if text else type(err).__name__


def _voxel_size(tif) -> tuple[float, float, float] | None:
    """The voxel size (Å; x, y, z) a TIFF records: ImageJ's metadata, else OME-XML's
    physical sizes, else (one image, no z) the resolution tags in cm, mm or µm; to 7
    significant digits (resolution tags are ratios of 32-bit integers: 10.52 Å came back
    as 10.520000000950358 in x and y beside 10.52 in z, a napari trial)."""
    for reader in (_voxel_size_from_imagej, _voxel_size_from_ome, _voxel_size_from_tags):
        found = reader(tif)
        if found is not None:
            return tuple(float(f"{v:.7g}") for v in found)
    return None


def _unit_A(text) -> float | None:
    """Å per ``text``, a length unit as ImageJ or OME writes it (ImageJ escapes
    non-ASCII: ``\\u00C5`` for Å, ``\\u00B5m`` for µm), None when unknown."""
    unit = str(text or "").strip()
    if "\\u" in unit:
        try:
            unit = unit.encode("ascii", "backslashreplace").decode("unicode_escape")
        except UnicodeError:
            return None
    return _UNIT_A.get(unit.lower())


def _voxel_size_from_ome(tif) -> tuple[float, float, float] | None:
    """OME-TIFF's first image: ``PhysicalSizeX/Y/Z`` with their units (OME's default µm);
    z as x where it has one plane and no PhysicalSizeZ."""
    import xml.etree.ElementTree as ElementTree

    if not getattr(tif, "is_ome", False) or not tif.ome_metadata:
        return None
    try:
        root = ElementTree.fromstring(tif.ome_metadata)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes = []
    for axis in "XYZ":
        value, unit = pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit")
        scale = _unit_A(unit or "\u00b5m")
        try:
            sizes.append(float(value) * scale if value is not None and scale else None)
        except ValueError:
            return None
    x, y, z = sizes
    if x is None or y is None or x <= 0 or y <= 0:
        return None
    if z is None:  # z as x only for one plane: a time series' frames are no depth
        planes = 1
        for axis in "ZTC":
            try:
                planes *= int(pixels.get(f"Size{axis}", "1") or 1)
            except ValueError:
                return None
        if planes > 1:
            return None
        z = x
    return (x, y, z)


def _voxel_size_from_tags(tif) -> tuple[float, float, float] | None:
    """Baseline resolution tags in cm (or tifffile's mm, µm) of a single image: pixel
    size 1 / resolution; a stack's z spacing is in no tag, so stacks get None."""
    if len(tif.pages) != 1:
        return None
    tags = tif.pages[0].tags
    try:
        scale = _RESOLUTION_UNIT_A.get(int(tags["ResolutionUnit"].value))
        (nx, dx), (ny, dy) = tags["XResolution"].value, tags["YResolution"].value
    except (KeyError, TypeError, ValueError):
        return None
    if scale is None or not nx or not ny or not dx or not dy:
        return None
    x, y = dx / nx * scale, dy / ny * scale
    if max(x, y) > MAX_TAGGED_PIXEL_A:  # a screen's density, not a microscope's
        return None
    return (float(x), float(y), float(x))


def _voxel_size_from_imagej(tif) -> tuple[float, float, float] | None:
    meta = tif.imagej_metadata or {}
    scale = _unit_A(meta.get("unit"))
    if scale is None:
        return None
    page = tif.pages[0]
    try:
        num, den = page.tags["XResolution"].value
        vx = den / num * scale
        num, den = page.tags["YResolution"].value
        vy = den / num * scale
    except (KeyError, ZeroDivisionError):
        return None
    vz = float(meta.get("spacing", vx / scale)) * scale
    return (float(vx), float(vy), float(vz))


def _imagej_dtype(volume: Volume) -> np.dtype:
    """The ImageJ type that holds ``volume``'s voxels exactly (see :func:`write_tiff`)."""
    dtype = np.dtype(volume.dtype)
    if dtype in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)):
        return dtype
    if dtype.kind in "biu":
        data = np.asarray(volume.data)
        if data.size == 0 or (int(data.min()) >= 0 and int(data.max()) <= 65535):
            return np.dtype(np.uint16)
    return np.dtype(np.float32)


def write_tiff(path: str | os.PathLike, volume: Volume, overwrite: bool = True) -> Path:
    """Write a :class:`Volume` as an ImageJ TIFF stack with its voxel size in Å.

    ImageJ stacks hold uint8, uint16 or float32 only: other integer voxels are written
    as uint16 when they fit (0…65535), else as float32 (exact to 2^24); other floats as
    float32 (a filament instance map of int32 ended in tifffile's error).
    """
    data = volume.load(dtype=_imagej_dtype(volume))
    vx, vy, vz = volume.voxel_size_A
    with atomic_path(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            imagej=True,
            resolution=(1.0 / vx, 1.0 / vy),
            metadata={"spacing": vz, "unit": "angstrom", "axes": "ZYX"},
        )
    return Path(path)
