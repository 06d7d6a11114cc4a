"""copick projects through the copick library: picks, tomograms and segmentations.

A copick location names one thing in a project::

    copick:CONFIG.json#RUN/OBJECT:USER/SESSION[@VOXEL]      picks
    copick:CONFIG.json#RUN/TOMO_TYPE@VOXEL                  a tomogram
    copick:CONFIG.json#RUN/NAME:USER/SESSION@VOXEL          a (multilabel) segmentation

After ``RUN/`` comes copick's own URI syntax (``copick.util.uri``), parsed by copick.
Picks hold positions in Å; ``@VOXEL`` (Å), when given, is the voxel spacing their
positions are expressed in on tomoscribe's side (default: the tomogram's voxel size
the command works on, else the run's only voxel spacing).  ``copick://`` with an
absolute path (``copick:///data/proj.json#…``) works too.

Conventions are copick's (``CopickPicks.numpy``/``full_positions``/``from_numpy``):
a pick is at ``location + transformation_[:3, 3]`` Å, and ``transformation_[:3, :3]``
is the object → tomogram rotation, i.e. tomoscribe's reference → particle rotation.
copick is an optional dependency (``pip install tomoscribe[copick]``) because every
copick release requires zarr < 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from ..core.legend import BACKGROUND_COLOUR, BACKGROUND_NAME, MAX_FEATURES, Legend, LegendEntry
from ..core.rotations import from_euler, to_euler
from ..errors import CopickLocationError, InputFileError, MissingVoxelSizeError, ParameterError
from ..volume import Volume
from .formats.copick import COPICK_IDENTITY, checked_transform, filament_ids, instance_ids
from .locations import COPICK_PREFIX, is_copick_location

PREFIX = COPICK_PREFIX


@dataclass(frozen=True)
class CopickLocation:
    """A parsed copick location: the config file, the run, copick's URI in the run."""

    config: Path
    run: str
    uri: str
    voxel_A: float | None = None

    def __str__(self) -> str:
        return f"{PREFIX}{self.config}#{self.run}/{self.uri}"


def parse_location(value) -> CopickLocation:
    """Split ``copick:CONFIG#RUN/URI[@VOXEL]``; the URI is checked by copick's parser later."""
    text = str(value)[len(PREFIX) :]
    if text.startswith("//"):
        text = text[2:]
    config, sep, rest = text.partition("#")
    run, sep2, uri = rest.partition("/")
    if not sep or not sep2 or not config or not run or not uri:
        raise ParameterError(
            f"{value} is not a copick location; write "
            "copick:CONFIG.json#RUN/OBJECT:USER/SESSION (picks) or "
            "copick:CONFIG.json#RUN/TOMO_TYPE@VOXEL (tomograms)."
        )
    voxel = None
    if "@" in uri:
        try:
            voxel = float(uri.rsplit("@", 1)[1])
        except ValueError:
            raise ParameterError(
                f"{value}: the voxel spacing after @ must be a number (Å)."
            ) from None
        if not voxel > 0:
            raise ParameterError(f"{value}: the voxel spacing after @ must be positive.")
    return CopickLocation(Path(config), run, uri, voxel)


def _copick():
    try:
        import copick
    except ImportError:
        raise ParameterError(
            "copick locations need the copick library, which is not installed here; "
            "install tomoscribe[copick] (pip install 'tomoscribe[copick]')."
        ) from None
    return copick


def _root(location: CopickLocation):
    if not location.config.is_file():
        raise InputFileError(
            f"{location.config} does not exist; give the copick project's configuration file."
        )
    copick = _copick()  # missing, it is said as such (a trial read "not a configuration")
    try:
        return copick.from_file(str(location.config))
    except Exception as err:  # pydantic, json and fsspec raise many types
        raise InputFileError(
            f"{location.config} is not a copick configuration ({str(err).splitlines()[0]})."
        ) from err


def _run(root, location: CopickLocation):
    run = root.get_run(location.run)
    if run is None:
        names = sorted(r.name for r in root.runs)
        relative = _relative_roots(root)
        if not names and relative:
            raise CopickLocationError(
                f"the copick project {location.config.name} has no run "
                f"{location.run!r}, nor any run, where its {relative[0]} "
                f"points from {Path.cwd()} (copick reads a relative root from the "
                "current directory); run from the folder the project was made in, "
                "or make the root absolute."
            )
        raise CopickLocationError(
            f"the copick project {location.config.name} has no run "
            f"{location.run!r}; it has {', '.join(names[:10]) or 'none'}."
        )
    return run


def _relative_roots(root) -> list[str]:
    """``overlay_root``/``static_root`` entries of the configuration that are local
    relative paths (``local://proj/overlay``), which copick resolves from the current
    directory, not from the configuration file's."""
    found = []
    for key in ("overlay_root", "static_root"):
        value = getattr(root.config, key, None)
        if isinstance(value, str) and value.startswith("local://"):
            if not value[len("local://") :].startswith("/"):
                found.append(f"{key} {value!r}")
    return found


def _uri(location: CopickLocation, kind: str) -> dict:
    from copick.util.uri import parse_copick_uri

    uri = location.uri.rsplit("@", 1)[0] if kind == "picks" else location.uri
    try:
        return parse_copick_uri(uri, kind)
    except ValueError as err:
        raise ParameterError(f"{location}: {err}") from None


def _object(root, name: str, location: CopickLocation):
    obj = root.get_object(name)
    if obj is None:
        names = sorted(o.name for o in root.pickable_objects)
        raise CopickLocationError(
            f"the copick project {location.config.name} has no object "
            f"{name!r}; it has {', '.join(names) or 'none'}."
        )
    return obj


def _voxel_spacing(run, voxel_A: float, location: CopickLocation):
    spacing = run.get_voxel_spacing(voxel_A)
    if spacing is None:
        have = sorted(v.voxel_size for v in run.voxel_spacings)
        raise CopickLocationError(
            f"run {run.name!r} of {location.config.name} has no voxel "
            f"spacing {voxel_A:g} Å; it has "
            f"{', '.join(f'{v:g}' for v in have) or 'none'}."
        )
    return spacing


def _picks_voxel(run, location: CopickLocation, voxel_size_A: float | None) -> float:
    if location.voxel_A:
        return location.voxel_A
    if voxel_size_A:
        return float(voxel_size_A)
    have = [v.voxel_size for v in run.voxel_spacings]
    if len(have) == 1:
        return float(have[0])
    raise MissingVoxelSizeError(  # (info then gives their positions in Å)
        f"{location}: picks are in Å; add @VOXEL (the voxel spacing in Å) to the location, "
        "or give the voxel size (`voxel_size_A`).",
        parameter="voxel_size_A",
    )


def read_picks(value, voxel_size_A: float | None = None) -> pd.DataFrame:
    """Picks of one object, user and session of a run, as a tomoscribe particle table.

    Returns x, y, z in voxels of the voxel spacing (see the module docstring),
    ``voxel_size_A``, ``score``, ``rot, tilt, psi`` when the picks trust their
    orientation, and ``tomo_name`` (the run).
    """
    location = parse_location(value)
    root = _root(location)
    run = _run(root, location)
    uri = _uri(location, "picks")
    _object(root, uri["object_name"], location)
    picks = _one_picks(root, run, location, uri)
    if location.voxel_A and run.voxel_spacings:  # (a run of picks alone: the unit)
        _voxel_spacing(run, location.voxel_A, location)
    voxel = _picks_voxel(run, location, voxel_size_A)
    _, transforms = picks.numpy()
    for i, transform in enumerate(transforms):  # as a picks file's are (a trial: scipy's
        checked_transform(transform, str(location), i)  # traceback, or a scale kept)
    table = pd.DataFrame(picks.full_positions().reshape(-1, 3) / voxel, columns=["x", "y", "z"])
    table["score"] = picks.scores()
    table["voxel_size_A"] = voxel
    if picks.trust_orientation and len(table):
        table[["rot", "tilt", "psi"]] = to_euler(Rotation.from_matrix(transforms[:, :3, :3]))
    declared = _is_filament(root, uri["object_name"])
    # instance_id is a filament's id only for objects declared filaments (copick's
    # FilamentSpec; other pickers keep particles' instance ids there: a review)
    filaments = filament_ids([p.instance_id for p in picks.points or []]) if declared else None
    if filaments is not None:
        table["filament_id"] = filaments
        tangents = transforms[:, :3, 2]  # +z: the filament's direction (identity: none)
        if not np.allclose(transforms[:, :3, :3], np.eye(3)):
            table[list(_DIRECTIONS)] = tangents
    table["tomo_name"] = run.name
    table.attrs[COPICK_IDENTITY] = {  # kept by a copick file written from the table
        "pickable_object_name": uri["object_name"],
        "user_id": str(picks.user_id),
        "session_id": str(picks.session_id),
    }
    return table


def _one_picks(root, run, location: CopickLocation, uri: dict):
    """The one set of picks a location names (:func:`_one_object`)."""
    there = run.get_picks(object_name=uri["object_name"])
    wanted = f"picks of {uri['object_name']!r} by {uri['user_id']}/{uri['session_id']}"
    text = location.uri.rsplit("@", 1)[0]
    return _one_object(root, run, location, "picks", text, wanted, there)


def _one_object(root, run, location: CopickLocation, kind: str, text: str, wanted: str, there):
    """The one copick object of ``kind`` that the URI ``text`` names in ``run``: its user
    and session may be copick's globs (``ribosome:alice`` is every session of alice's),
    resolved by copick's own ``resolve_copick_objects``; none, or several, are refused
    naming those there are (``there``: the run's objects of that name)."""
    from copick.util.uri import resolve_copick_objects

    found = resolve_copick_objects(text, root, kind, run_name=run.name)
    if len(found) == 1:
        return found[0]
    where = f"run {run.name!r} of {location.config.name}"
    if found:
        named = ", ".join(sorted(f"{p.user_id}/{p.session_id}" for p in found))
        raise CopickLocationError(
            f"{where} has {len(found)} sets of {wanted} ({named}); name one by its "
            "user and session."
        )
    others = sorted(f"{p.user_id}/{p.session_id}" for p in there)
    raise CopickLocationError(
        f"{where} has no {wanted}"
        + (f"; it has them by {', '.join(others)}." if others else "; it has none of that name.")
    )


def _check_ids(location: CopickLocation, uri: dict) -> None:
    """Refuse a user or session id to write under that is missing (copick's ``*``) or
    that copick would store under another name (``copick.util.escape.sanitize_name``:
    no spaces, underscores, slashes or ``<>:"\\|?*``), so the location written is the
    one read back."""
    from copick.util.escape import sanitize_name

    for key, what in (("user_id", "user"), ("session_id", "session")):
        name = str(uri.get(key) or "")
        if not name or "*" in name:
            raise ParameterError(
                f"{location}: name the {what} to write under, "
                "RUN/OBJECT:USER/SESSION (e.g. TS_01/ribosome:tomoscribe/1)."
            )
        try:
            kept = sanitize_name(name, suppress_warnings=True)
        except ValueError:
            kept = ""
        if kept != name:
            better = f"; write {kept!r}" if kept else ""
            raise ParameterError(
                f"{location}: copick keeps no spaces, underscores, slashes or "
                f'<>:"\\|?* in a {what} id, so {name!r} would be stored as another '
                f"name{better}."
            )


def names_picks(value) -> bool:
    """Whether a location names picks the project holds (``RUN/OBJECT[:USER/SESSION]``,
    with ``@VOXEL`` or copick's globs), rather than a tomogram or a segmentation: for
    ``info``, which read ``ribosome:alice/1@10`` as a segmentation (a review).  Any
    failure is no (the readers then say what is wrong, copick missing included)."""
    try:
        from copick.util.uri import resolve_copick_objects

        location = parse_location(value)
        root = _root(location)
        run = _run(root, location)
        uri = _uri(location, "picks")
        if root.get_object(uri["object_name"]) is None:
            return False
        text = location.uri.rsplit("@", 1)[0]
        return bool(resolve_copick_objects(text, root, "picks", run_name=run.name))
    except Exception:  # noqa: BLE001 (a probe: copick raises many kinds)
        return False


def check_picks_target(value, tomo_name: str | None = None, feature: str | None = None) -> None:
    """Refuse, before any work, a picks location that cannot be written: ids copick
    would store otherwise, picks already there, a project whose overlay is not
    writable (a trial: found at the write, after the command's other outputs were
    written), with ``tomo_name`` (the tomogram the picks will be of) another run of the
    project by that name (:func:`_check_run_of_rows`), and with ``feature`` (what the
    picks are of) another of the project's particles than the location names (a trial's
    proteasomes were stored as ribosome picks without a word; features that are no
    particle of the project, vesicles or a user's own names, may go to any object)."""
    location = parse_location(value)
    root = _root(location)
    run = _run(root, location)
    uri = _uri(location, "picks")
    _object(root, uri["object_name"], location)
    if location.voxel_A:
        _voxel_spacing(run, location.voxel_A, location)
    _check_ids(location, uri)
    if tomo_name is not None:
        _check_run_of_rows(root, run, location, pd.DataFrame({"tomo_name": [tomo_name]}))
    if feature is not None and feature != uri["object_name"] and _is_particle(root, feature):
        raise CopickLocationError(
            f"{location}: the picks are of {feature!r}, one of the project's particles, not "
            f"of {uri['object_name']!r}; write them to #{run.name}/{feature}:…."
        )
    _check_writable(root, run, location)
    if run.get_picks(
        object_name=uri["object_name"], user_id=uri["user_id"], session_id=uri["session_id"]
    ):
        raise CopickLocationError(
            f"run {run.name!r} of {location.config.name} already has "
            f"picks of {uri['object_name']!r} by {uri['user_id']}/"
            f"{uri['session_id']}; choose another session."
        )


def _is_particle(root, name: str) -> bool:
    """Whether ``name`` is one of the project's objects declared a particle."""
    obj = root.get_object(name)
    return bool(obj is not None and getattr(obj, "is_particle", False))


def _check_writable(root, run, location: CopickLocation) -> None:
    """Refuse a run whose overlay (where copick writes picks) is a local folder that
    cannot be written; overlays on other file systems (``ssh://``, ``s3://``: copick
    strips their protocol from the run's path, a review) are left to the write."""
    import os

    overlay_root = str(getattr(root.config, "overlay_root", "") or "")
    if "://" in overlay_root and not overlay_root.startswith(("local://", "file://")):
        return
    overlay = str(getattr(run, "overlay_path", "") or "")
    if not overlay:
        return
    folder = Path(overlay)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        raise CopickLocationError(
            f"{location}: the project's overlay ({folder}) cannot be written here (read-only "
            "or not yours); give a project whose overlay you can write."
        )


def picks_target_key(value) -> tuple:
    """What a picks location names, whatever its spelling (relative or ``copick://``
    absolute config, ``@VOXEL`` or none): the config file, run, object, user and
    session; two outputs of one key are one set of picks."""
    location = parse_location(value)
    uri = location.uri.rsplit("@", 1)[0]
    return (str(Path(location.config).resolve()), location.run, uri)


def _check_run_of_rows(root, run, location: CopickLocation, table: pd.DataFrame) -> None:
    """Refuse rows that name only other runs of the project (``tomo_name``, matched as
    :func:`tomoscribe.io.particles.select_tomogram` matches, with or without a file
    suffix): they are another tomogram's particles.  Names of no run (other tools'
    tomogram names) are let through."""
    from .particles import tomogram_key

    if "tomo_name" not in table or not len(table):
        return
    names = {tomogram_key(n) for n in table["tomo_name"].astype(str).unique()}
    if run.name in names:
        return
    others = sorted(names & {r.name for r in root.runs})
    if others:
        raise CopickLocationError(
            f"{location}: the particles are of run {others[0]!r} of "
            f"{location.config.name} (their tomogram name), not of {run.name!r}; "
            f"write them to #{others[0]}/…."
        )


def check_same_run(tomogram, *points) -> None:
    """Refuse picks from another run of the tomogram's copick project: where the
    tomogram and a points file are copick locations of one config, their runs must be
    one (a trial: ``extract`` and ``trainset`` cut TS_02's picks out of TS_01's
    tomogram, said only in a warning that the rows "were taken for" TS_01).  Other
    inputs are left to the particle readers' own name checks."""
    if not is_copick_location(tomogram):
        return
    where = parse_location(tomogram)
    for value in points:
        if value is None or not is_copick_location(value):
            continue
        picks = parse_location(value)
        same = Path(picks.config).resolve() == Path(where.config).resolve()
        if same and picks.run != where.run:
            raise CopickLocationError(
                f"{value} are picks of run {picks.run!r}, but the tomogram is of run "
                f"{where.run!r}; give #{where.run}/… picks, or run {picks.run!r}'s "
                "tomogram."
            )


def write_picks(value, table: pd.DataFrame, voxel_size_A: float | None = None) -> str:
    """Store a particle table as copick picks (positions in Å, 4×4 transforms).

    Parameters
    ----------
    value : the picks location, ``copick:CONFIG#RUN/OBJECT:USER/SESSION[@VOXEL]``.
    table : x, y, z (voxels of ``voxel_size_A``), optionally rot, tilt, psi (degrees,
        RELION's convention) and score.
    voxel_size_A : Å per coordinate unit of ``table``; it alone turns the coordinates
        into Å.  The location's ``@VOXEL`` (a voxel spacing the run must have) is used
        only where this is None, else the run's only voxel spacing.

    Returns
    -------
    str : the location written.
    """
    check_picks_target(value)
    location = parse_location(value)
    root = _root(location)
    run = _run(root, location)
    uri = _uri(location, "picks")
    # positions in Å: the table's coordinates are voxels of voxel_size_A whatever the
    # location's @VOXEL says (Å are the same at every voxel spacing)
    _check_run_of_rows(root, run, location, table)
    voxel = float(voxel_size_A) if voxel_size_A else _picks_voxel(run, location, None)
    positions = table[["x", "y", "z"]].to_numpy(float) * voxel
    transforms = np.tile(np.eye(4), (len(table), 1, 1))
    has_angles = {"rot", "tilt", "psi"} <= set(table)
    if has_angles and len(table):
        transforms[:, :3, :3] = (
            from_euler(table[["rot", "tilt", "psi"]].to_numpy(float)).as_matrix().reshape(-1, 3, 3)
        )
    scores = None
    if "score" in table:
        scores = pd.to_numeric(table["score"], errors="coerce").fillna(1.0).to_numpy(float)
    picks = run.new_picks(uri["object_name"], uri["session_id"], uri["user_id"])
    directions = set(_DIRECTIONS) <= set(table) and not has_angles and len(table) > 0
    filament = _is_filament(root, uri["object_name"])
    if directions and filament:  # copick's FilamentSpec: the transform's +z is the tangent
        transforms[:, :3, :3] = _turning_z_to(table[list(_DIRECTIONS)].to_numpy(float))
    picks.meta.trust_orientation = bool(has_angles)
    picks.from_numpy(positions, transforms, instance_ids=instance_ids(table), scores=scores)
    if directions and not filament:  # a trial: the filaments' ids went unsaid too
        import warnings

        warnings.warn(
            f"{location} keeps each filament's id (instance_id) but not its direction, "
            f"as {uri['object_name']!r} is not declared a filament in the project (copick "
            "keeps a filament's direction as its transform's +z); a STAR or CSV output "
            "keeps both.",
            stacklevel=3,
        )
    return str(location)


#: A filament segment's unit direction (x, y, z), as ``pick --filament`` writes it.
_DIRECTIONS = ("dir_x", "dir_y", "dir_z")


def keeps_directions(value) -> bool:
    """Whether picks written to this location keep filament directions: its object is
    declared a filament (the transform's +z; :func:`write_picks`)."""
    location = parse_location(value)
    root = _root(location)
    return _is_filament(root, _uri(location, "picks")["object_name"])


def _is_filament(root, name: str) -> bool:
    """Whether ``name`` is one of the project's objects declared a filament (copick's
    ``FilamentSpec``, in the object's metadata)."""
    return bool(getattr(root.get_object(name), "is_filament", False))


def _turning_z_to(directions: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations taking +z to each unit direction (x, y, z) by the shortest
    turn (about z × d; a half turn about x for −z)."""
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, d)
    sin = np.linalg.norm(axis, axis=1)
    angle = np.arctan2(sin, d @ z)
    unit = np.where(sin[:, None] > 1e-12, axis / np.maximum(sin, 1e-12)[:, None], [1.0, 0, 0])
    return Rotation.from_rotvec(unit * angle[:, None]).as_matrix().reshape(-1, 3, 3)


def read_tomogram(value) -> Volume:
    """A run's tomogram at a voxel spacing, lazily (the zarr array of its full resolution)."""
    import zarr

    location = parse_location(value)
    root = _root(location)
    run = _run(root, location)
    uri = _uri(location, "tomogram")
    if uri.get("voxel_spacing") in (None, "", "*"):  # (copick's parser gives "*": a
        have = sorted(v.voxel_size for v in run.voxel_spacings)  # trial's traceback)
        raise ParameterError(
            f"{location}: name the voxel spacing, TOMO_TYPE@VOXEL (run {run.name!r} has "
            f"{', '.join(f'{v:g}' for v in have) or 'none'} Å)."
        )
    spacing = _voxel_spacing(run, float(uri["voxel_spacing"]), location)
    tomogram = next(iter(spacing.get_tomograms(uri["tomo_type"])), None)
    if tomogram is None:
        have = sorted(t.tomo_type for t in spacing.tomograms)
        raise CopickLocationError(
            f"run {run.name!r} of {location.config.name} has no "
            f"{uri['tomo_type']!r} tomogram at {spacing.voxel_size:g} Å; "
            f"it has {', '.join(have) or 'none'}."
        )
    array = zarr.open(tomogram.zarr(), mode="r")["0"]
    vs = float(spacing.voxel_size)
    return Volume(array, (vs, vs, vs), metadata={"source": str(location), "format": "copick"})


def tomogram_shape(value, voxel_A: float) -> tuple[int, int, int] | None:
    """The size (z, y, x voxels) of the run's tomogram at ``voxel_A`` Å (its first, as
    copick's ``get_tomogram_centers_from_copick`` takes it), None where the run has no
    tomogram there.  ``value`` is any location in the run."""
    import zarr

    location = parse_location(value)
    run = _run(_root(location), location)
    spacing = run.get_voxel_spacing(voxel_A)
    tomograms = spacing.tomograms if spacing is not None else []
    if not tomograms:
        return None
    return tuple(int(n) for n in zarr.open(tomograms[0].zarr(), mode="r")["0"].shape)


def _tomogram_shapes(run, voxel_A: float) -> set[tuple[int, int, int]]:
    """The sizes (z, y, x voxels) of every tomogram of ``run`` at ``voxel_A`` Å."""
    import zarr

    spacing = run.get_voxel_spacing(voxel_A)
    tomograms = spacing.tomograms if spacing is not None else []
    return {tuple(int(n) for n in zarr.open(t.zarr(), mode="r")["0"].shape) for t in tomograms}


def write_segmentation(value, labels: np.ndarray, legend: Legend | None = None) -> str:
    """Store a label map as a copick multilabel segmentation (OME-Zarr, copick's writer).

    The voxel spacing must exist in the run, and the map must have the shape of one of
    the run's tomograms there (where it has any).  Label ids are kept; a legend whose
    features are not the project's objects with the same labels is refused.
    """
    location = parse_location(value)
    root = _root(location)
    run = _run(root, location)
    uri = _uri(location, "segmentation")
    if uri.get("voxel_spacing") in (None, "", "*"):
        raise ParameterError(f"{location}: name the voxel spacing, NAME:USER/SESSION@VOXEL.")
    voxel = float(uri["voxel_spacing"])
    _voxel_spacing(run, voxel, location)
    _check_ids(location, uri)
    shapes = _tomogram_shapes(run, voxel)
    if shapes and tuple(np.shape(labels)) not in shapes:
        said = " or ".join(str(s) for s in sorted(shapes))
        raise CopickLocationError(
            f"{location}: the label map is {tuple(np.shape(labels))} (z, y, x) but run "
            f"{run.name!r}'s tomograms at {voxel:g} Å are {said}; segment one of them, "
            "or name the voxel spacing the map was made at."
        )
    for key, entry in legend or ():
        if key == 0:
            continue
        obj = _object(root, entry.name, location)
        if obj.label != key:
            raise CopickLocationError(
                f"feature {entry.name!r} has label {key} here but "
                f"{obj.label} in {location.config.name}; relabel first."
            )
    if run.get_segmentations(
        name=uri["name"],
        user_id=uri["user_id"],
        session_id=uri["session_id"],
        voxel_size=voxel,
        is_multilabel=True,
    ):
        raise CopickLocationError(
            f"run {run.name!r} of {location.config.name} already has the "
            f"segmentation {uri['name']!r} by {uri['user_id']}/"
            f"{uri['session_id']}; choose another session."
        )
    seg = run.new_segmentation(
        voxel_size=voxel,
        name=uri["name"],
        session_id=uri["session_id"],
        is_multilabel=True,
        user_id=uri["user_id"],
    )
    seg.from_numpy(np.asarray(labels))
    return str(location)


def _segmentation(value):
    """The copick segmentation a location names, and the project's root."""
    location = parse_location(value)
    root = _root(location)
    run = _run(root, location)
    uri = _uri(location, "segmentation")
    wanted = f"segmentation {uri['name']!r} by {uri['user_id']}/{uri['session_id']}"
    if uri.get("voxel_spacing") not in (None, "*"):
        wanted += f" at {uri['voxel_spacing']} Å"
    there = run.get_segmentations(name=uri["name"])
    return root, _one_object(root, run, location, "segmentation", location.uri, wanted, there)


def check_segmentation_feature(value, feature: str) -> None:
    """Refuse to read a single-label segmentation of one of the project's particles as
    another particle (its nonzero voxels are that object: a trial picked a segmentation
    of ribosomes as proteasomes, without a word); other features may come from other
    objects' segmentations (vesicles from a membrane's).  Multilabel ones have a legend."""
    root, seg = _segmentation(value)
    other = seg.name != feature and _is_particle(root, seg.name) and _is_particle(root, feature)
    if not seg.is_multilabel and other:  # (vesicles picked from a membrane's: a review)
        raise CopickLocationError(
            f"{value} is a segmentation of {seg.name!r}, so its voxels are not {feature!r}; "
            f"pick it as {seg.name!r}, or give a segmentation of {feature!r}."
        )


def read_segmentation(value) -> Volume:
    """A run's segmentation at a voxel spacing, lazily."""
    import zarr

    location = parse_location(value)
    _, seg = _segmentation(value)
    vs = float(seg.voxel_size)
    return Volume(
        zarr.open(seg.zarr(), mode="r")["0"],
        (vs, vs, vs),
        metadata={"source": str(location), "format": "copick"},
    )


def segmentation_legend(value) -> Legend | None:
    """The features of a copick multilabel segmentation: the project's pickable objects
    by their ``label`` (copick's convention: voxel value = the object's label), as a
    :class:`~tomoscribe.core.legend.Legend`; None for a single-label segmentation
    (nonzero = the object it is named after).

    Objects whose label is outside 1–255 (a legend's ids) are left out.
    """
    root, seg = _segmentation(value)
    if not seg.is_multilabel:
        return None
    entries = {0: LegendEntry(BACKGROUND_NAME, BACKGROUND_COLOUR)}
    for obj in root.pickable_objects:
        label = obj.label
        if isinstance(label, int) and 1 <= label <= MAX_FEATURES and label not in entries:
            colour = None
            if obj.color is not None and len(obj.color) >= 3:
                colour = "#" + "".join(f"{int(c):02x}" for c in obj.color[:3])
            entries[label] = LegendEntry(obj.name, colour)
    return Legend(entries)


__all__ = [
    "is_copick_location",
    "parse_location",
    "read_picks",
    "write_picks",
    "check_picks_target",
    "names_picks",
    "keeps_directions",
    "check_same_run",
    "check_segmentation_feature",
    "picks_target_key",
    "read_tomogram",
    "tomogram_shape",
    "read_segmentation",
    "segmentation_legend",
    "write_segmentation",
    "CopickLocationError",
]
