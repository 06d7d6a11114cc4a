"""The annotation dock widget: open → annotate → train → preview → apply → merge → pick.

Each button gathers what the layers and fields hold and calls one function of
:mod:`tomoscribe.interactive` (the functions the commands call), writing into a work
folder the same files the command line writes (boxes CSV, painted MRC, training set,
model, maps, label map + legend, picks), so either can continue the other's session.
Long steps (train, preview, apply, vesicles) run in napari's worker threads; progress
and losses come back through Qt signals (queued into the event loop), and cancel sets an
event that the library's progress callbacks turn into :class:`~tomoscribe.progress.Cancelled`.
Bad input is one notification (napari's), nothing half-written, the viewer usable.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import MissingVoxelSizeError, OutputError, ParameterError, TomoscribeError
from ..outputs import check_outputs, sidecar_path
from ..progress import Cancelled
from .heap import frozen_heap
from .loss_plot import LossPlot
from .reader import legend_colormap, scale_translate

_ANNOTATION = ("_boxes.csv", "_painted.mrc", ".trainset")  # what Save writes per feature


#: What the widget's user can do about particles too large for the painted sizes.
_PAINT_WHOLE = (
    "paint the particles on their central slices (their widest sections) or whole, or "
    "pick from the command line with --max-size"
)
#: The endings of the names of the layers the widget draws on a tomogram.
_DRAWN_SUFFIXES = (
    " positive boxes",
    " negative boxes",
    " outlines",
    " paint",
    " preview",
    " suggested boxes",
    " picks",
    " centrelines",
)

#: The metadata mark of the image layers this widget opens (it may rescale them).
_OPENED_BY = "tomoscribe annotate widget"


def _sizes(scale) -> str:
    """A layer's scale (z, y, x) as ``10 × 10 × 20`` (x, y, z, as voxel sizes are said)."""
    return " × ".join(f"{v:g}" for v in list(scale)[::-1])


_PAINT_TIGHTER = (
    "paint the particles no larger than they are, or lower their threshold, or pick from "
    "the command line with --min-size"
)


def _check_fixed_names(output: Path, step: str) -> None:
    """Refuse, with advice the widget can follow, a file of the user's at a name the
    widget chooses (``labels.mrc``, its legend and record): the commands' sentence said
    "choose another name", which the widget has no field for (a napari trial)."""
    from ..core.legend import legend_path
    from ..ownership import is_ours

    for path in (output, legend_path(output), sidecar_path(output)):
        if (path.exists() or path.is_symlink()) and not is_ours(path):
            raise OutputError(
                f"{path} is not tomoscribe's, and {step} writes {output.name} there; move "
                "it out of the work folder, or choose another work folder."
            )


def _unexpected(err: Exception) -> str:
    """One sentence for an error the widget did not expect (a bug)."""
    import logging

    logging.getLogger(__name__).debug("unexpected error", exc_info=err)
    first = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else ""
    return (
        f"unexpected error ({type(err).__name__}{': ' + first if first else ''}); the step "
        "stopped, and the viewer can go on."
    )


class _Signals(QObject):
    """Signals emitted from worker threads; Qt queues them into the event loop."""

    progress = Signal(str, int, int)
    epoch = Signal(dict, object)  # the epoch's record, the loss curve as RGBA
    previewed = Signal(str, int, object)  # feature, first slice, maps (slices, ny, nx)
    said = Signal(str, bool)  # a message for the user from a step (text, is an error)


class _CloseWatcher(QObject):
    """Calls ``on_close`` when the viewer's window closes (an event filter on it): a
    closing made by a program at once, one the user asked for once the window has
    really gone (napari may ask to confirm and keep it open).  It holds the window and
    the widget weakly, so that neither is kept alive by it."""

    def __init__(self, window, on_close, parent=None):
        super().__init__(parent)
        self._on_close = weakref.WeakMethod(on_close)
        window.installEventFilter(self)

    def _close(self) -> None:
        on_close = self._on_close()
        if on_close is not None:
            on_close()

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Close and obj.isWindow():
            if not event.spontaneous():
                self._close()
            else:
                window, close = weakref.ref(obj), self._on_close
                QTimer.singleShot(0, lambda: _closed_later(window, close))
        return False


def _closed_later(window, on_close) -> None:
    """After a close the user asked for: ``on_close()`` where the window went."""
    shown = window()
    try:
        if shown is not None and shown.isVisible():
            return  # the user kept it open
    except RuntimeError:  # the window's C++ object is gone: it closed
        pass
    method = on_close()
    if method is not None:
        method()


def _quietly(method_ref):
    """A callable running the weakly held method, if it and its widget still exist."""

    def call() -> None:
        method = method_ref()
        if method is not None:
            try:
                method()
            except RuntimeError:  # the widget's C++ object is gone
                pass

    return call


def _changes(atom) -> tuple[tuple, np.ndarray, np.ndarray]:
    """(index arrays, old values, new values) of the voxels one undo-history atom of a
    napari labels layer changed: a masked atom (napari ≥ 0.6: bounding box, mask, old
    values, new label) or the older (indices, old values, new values) triple."""
    if hasattr(atom, "slice_key"):
        mask = None if atom.mask is None else np.asarray(atom.mask, bool)
        old = np.asarray(atom.old_values)
        if mask is None:
            mask = np.ones(old.shape, bool)
            old = old[mask]
        starts = [s.start or 0 for s in atom.slice_key]
        indices = tuple(i + start for i, start in zip(np.nonzero(mask), starts))
        return indices, old, np.full(len(indices[0]), atom.new_value)
    indices, old, new = atom
    indices = tuple(np.asarray(i) for i in indices)
    return (
        indices,
        np.broadcast_to(np.asarray(old), indices[0].shape),
        np.broadcast_to(np.asarray(new), indices[0].shape),
    )


class AnnotateWidget(QWidget):
    """One dock widget for the whole loop on one tomogram (see the module docstring)."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.volume = None  # tomoscribe Volume of the open tomogram
        self.tomogram_path = None
        self.models: dict[str, Path] = {}
        self.maps: dict[str, Path] = {}
        self.labels_path = None
        self.legend = None
        self.picks = None
        self.filament_picks = None  # FilamentPicks of the last filament pick
        self.messages: list[str] = []  # every notification shown, newest last
        self.given_voxel_size_A = None  # the field's voxel size, for a file without one
        self._known: set[Path] = set()  # work-folder files loaded back or written here
        self._not_loaded: dict[str, str] = {}  # feature → why its files were not loaded
        self._edits: dict[int, int] = {}  # id of a box or paint layer → its edits so far
        self._saved_edits: dict[int, int] = {}  # … → its edits when last saved or loaded
        self._tiles: dict[str, int] = {}  # feature → box size its training set was cut at
        self._setting_threshold = False  # the slider moved by the widget, not the user
        self.losses: list[dict] = []
        self.worker = None
        self._cancel = threading.Event()
        self._signals = _Signals()
        self._signals.progress.connect(self._on_progress)
        self._signals.epoch.connect(self._on_epoch)
        self._signals.previewed.connect(self._on_preview)
        self._signals.said.connect(self.notify)
        layout = QVBoxLayout(self)
        for box in (
            self._open_box(),
            self._annotate_box(),
            self._train_box(),
            self._preview_box(),
            self._apply_box(),
        ):
            layout.addWidget(box)
        layout.addStretch()
        self.viewer.dims.events.current_step.connect(self._clicked(self._slice_changed))
        self._close_watcher = None  # on the viewer's window once docked (_watch_close)

    # --- layout -------------------------------------------------------------------------
    def _open_box(self) -> QGroupBox:
        box, form = QGroupBox("1. Open"), QFormLayout()
        self.path_edit = QLineEdit()
        self.voxel_edit = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1e4)
        self.voxel_edit.setSpecialValueText("from the file")
        self.folder_edit = QLineEdit()
        button = QPushButton("Open tomogram")
        button.clicked.connect(self._clicked(lambda: self.open_tomogram(self.path_edit.text())))
        for label, widget in (
            ("Tomogram", self.path_edit),
            ("Voxel size (Å)", self.voxel_edit),
            ("Work folder", self.folder_edit),
            ("", button),
        ):
            form.addRow(label, widget)
        box.setLayout(form)
        return box

    def _annotate_box(self) -> QGroupBox:
        box, form = QGroupBox("2. Annotate one feature"), QFormLayout()
        self.feature_edit = QLineEdit("membrane")
        self.tile_edit = QSpinBox(minimum=16, maximum=4096, value=64)  # any trainset's
        start = QPushButton("Start / switch feature")
        start.clicked.connect(self._clicked(lambda: self.start_feature(self.feature_edit.text())))
        save = QPushButton("Save annotation + training set")
        save.clicked.connect(self._clicked(self.save_annotation))
        for label, widget in (
            ("Feature", self.feature_edit),
            ("Box (px)", self.tile_edit),
            ("", start),
            ("", save),
        ):
            form.addRow(label, widget)
        box.setLayout(form)
        return box

    def _train_box(self) -> QGroupBox:
        box, layout = QGroupBox("3. Train"), QVBoxLayout()
        row = QHBoxLayout()
        self.epochs_edit = QSpinBox(minimum=1, maximum=500, value=20)
        # networks per feature: more than one is an ensemble, whose spread guides the
        # tile suggestions (train --ensemble)
        self.members_edit = QSpinBox(minimum=1, maximum=8, value=1)
        train, cancel = QPushButton("Train"), QPushButton("Cancel")
        # the advice after a collapsed training names the learning rate
        self.learning_rate_edit = QDoubleSpinBox(
            decimals=4, minimum=0.0001, maximum=1.0, value=0.01, singleStep=0.001
        )
        train.clicked.connect(self._clicked(self.train))
        cancel.clicked.connect(self._clicked(self.cancel))
        for widget in (
            QLabel("Epochs"),
            self.epochs_edit,
            QLabel("Networks"),
            self.members_edit,
            QLabel("Learning rate"),
            self.learning_rate_edit,
            train,
            cancel,
        ):
            row.addWidget(widget)
        self.progress = QProgressBar()
        self.status = QLabel("")
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.loss_image = QLabel()  # the loss curve, drawn in the worker (loss_plot.py)
        self.loss_image.setMinimumHeight(160)  # LossPlot's 1.6 in at 100 dpi
        layout.addWidget(self.loss_image)
        box.setLayout(layout)
        return box

    def _preview_box(self) -> QGroupBox:
        box, form = QGroupBox("4. Preview"), QFormLayout()
        button = QPushButton("Preview this slice")
        button.clicked.connect(self._clicked(self.preview))
        self.follow = QCheckBox("follow the slice")
        self.neighbours_edit = QSpinBox(minimum=0, maximum=8, value=2)
        self.neighbours_edit.setToolTip(
            "Also preview this many slices above and below (shown as you step through them)."
        )
        self.threshold_slider = QSlider(Qt.Horizontal, minimum=0, maximum=200, value=80)
        self.threshold_slider.valueChanged.connect(self._clicked(self._threshold_moved))
        self.threshold_label = QLabel("0.80")
        self.threshold_slider.setToolTip(
            "The shown feature's threshold; moving it also sets that feature's entry of "
            "Merge's Thresholds."
        )
        suggest = QPushButton("Suggest tiles to annotate")
        suggest.clicked.connect(self._clicked(self.suggest_tiles))
        form.addRow("", button)
        form.addRow("", self.follow)
        form.addRow("Neighbouring slices (±)", self.neighbours_edit)
        row = QHBoxLayout()
        row.addWidget(self.threshold_slider)
        row.addWidget(self.threshold_label)
        form.addRow("Threshold", row)
        form.addRow("", suggest)
        box.setLayout(form)
        return box

    def _apply_box(self) -> QGroupBox:
        box, form = QGroupBox("5. Apply, merge, vesicles, pick, export"), QFormLayout()
        apply_button = QPushButton("Apply all models to the tomogram")
        apply_button.clicked.connect(self._clicked(self.apply))
        self.thresholds_edit = QLineEdit("")
        self.thresholds_edit.setPlaceholderText("membrane=0.7 (default: as measured in training)")
        self.thresholds_edit.setToolTip(
            "Merge's threshold per feature; moving the preview's slider sets the shown "
            "feature's. A feature not named merges at its measured threshold."
        )
        self.erasers_edit = QLineEdit("")
        merge = QPushButton("Merge")
        merge.clicked.connect(
            self._clicked(lambda: self.merge(self._thresholds(), self._erasers()))
        )
        vesicles = QPushButton("Close vesicles")
        vesicles.clicked.connect(self._clicked(self.close_vesicles))
        self.pick_feature_edit = QComboBox(editable=True)
        pick = QPushButton("Pick")
        pick.clicked.connect(
            self._clicked(
                lambda: self.pick(
                    self.pick_feature_edit.currentText(),
                    filament=self.filament_check.isChecked(),
                    spacing=self.spacing_edit.value(),
                    radius_nm=self.radius_edit.value() or None,
                )
            )
        )
        self.filament_check = QCheckBox("filaments (seeds along traced centrelines)")
        self.spacing_edit = QDoubleSpinBox(decimals=1, minimum=1.0, maximum=1e4, value=10.0)
        self.radius_edit = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1e3)
        self.radius_edit.setSpecialValueText("known for the name")
        self.export_edit = QLineEdit("picks.star, picks.csv, picks.mod, picks.json")
        export = QPushButton("Export picks")
        export.clicked.connect(
            self._clicked(
                lambda: self.export(
                    [s.strip() for s in self.export_edit.text().split(",") if s.strip()]
                )
            )
        )
        for label, widget in (
            ("", apply_button),
            ("Thresholds", self.thresholds_edit),
            ("Erasers", self.erasers_edit),
            ("", merge),
            ("", vesicles),
            ("Feature", self.pick_feature_edit),
            ("", self.filament_check),
            ("Seed spacing (voxels)", self.spacing_edit),
            ("Tube radius (nm)", self.radius_edit),
            ("", pick),
            ("Files", self.export_edit),
            ("", export),
        ):
            form.addRow(label, widget)
        box.setLayout(form)
        return box

    # --- messages -----------------------------------------------------------------------
    def notify(self, message: str, error: bool = True) -> None:
        """Show one napari notification (and keep it in ``messages``)."""
        from napari.utils.notifications import show_error, show_info

        self.messages.append(message)
        (show_error if error else show_info)(message)

    def _guarded(self, work, *args, **kwargs):
        """Run ``work``; a tomoscribe error or OS error becomes a notification, and so
        does any other error (one sentence: nothing reaches Qt's event loop)."""
        try:
            return work(*args, **kwargs)
        except (TomoscribeError, OSError) as err:
            self.notify(str(err))
        except Exception as err:  # a bug: said in one sentence, the viewer usable
            self.notify(_unexpected(err))
        return None

    def _clicked(self, handler):
        """A button's (or slider's) slot: ``handler()`` guarded (:meth:`_guarded`),
        whatever Qt passes (``checked``, the value) left out."""

        def slot(*_args):
            self._guarded(handler)

        return slot

    # --- 1. open ------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        """The work folder: the field's, else ``STEM_tomoscribe`` beside the tomogram
        (one per tomogram: a shared ``tomoscribe-session`` made TS_02's session refuse
        TS_01's features as another tomogram's, a napari trial)."""
        from ..io.particles import tomogram_stem

        text = self.folder_edit.text().strip()
        if text:
            return Path(text)
        if self.tomogram_path is None:
            raise ParameterError("open a tomogram first.")
        path = Path(self.tomogram_path).resolve()
        return path.parent / f"{tomogram_stem(path)}_tomoscribe"

    def _work_folder(self) -> Path:
        """The work folder, refused in one sentence where it cannot be made."""
        folder = self.folder
        existing = folder.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not folder.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
            raise ParameterError(
                f"the work folder {folder} cannot be made because {existing} is read-only; "
                "choose a work folder you can write to under 'Work folder'."
            )
        return folder

    def _busy(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def _check_idle(self) -> None:
        if self._busy():
            raise ParameterError("wait for the running step to finish, or cancel it.")

    def open_tomogram(self, path, voxel_size_A: float | None = None):
        """Open a tomogram as an image layer in Å, with the voxel size the file records;
        only for a file without one, ``voxel_size_A`` (else the 'Voxel size (Å)'
        field's), kept with the opened volume (nothing is guessed).  What the work
        folder already holds for the tomogram is loaded back (:meth:`_load_back`).
        Returns the layer, or None after a notification."""
        return self._guarded(self._open, path, voxel_size_A)

    def _open(self, path, voxel_size_A: float | None):
        from ..io import read_volume
        from ..volume import check_is_tomogram

        text = "" if path is None else str(path).strip()
        if not text:
            raise ParameterError(
                "enter the tomogram's file (MRC, OME-Zarr or TIFF) under 'Tomogram' first."
            )
        self._check_idle()
        self._check_nothing_unsaved()
        name = Path(text).name
        given = voxel_size_A or (self.voxel_edit.value() or None)
        try:
            volume, used = read_volume(text), None  # the file's own voxel size wins
            if given and np.allclose(volume.voxel_size_A, 1.0):  # an unset MRC header
                volume, used = read_volume(text, given), float(given)
        except MissingVoxelSizeError:
            if given is None:
                check_is_tomogram(read_volume(text, 1.0), name)  # not asked, then refused
                self.voxel_edit.setFocus()
                raise ParameterError(
                    f"{name} records no voxel size; enter it under 'Voxel size (Å)' and "
                    "open it again."
                ) from None
            volume, used = read_volume(text, given), float(given)
        check_is_tomogram(volume, name)  # a 2D image opened as one slice, unsaid (a trial)
        networks = {}  # another tomogram's, kept for Apply
        if self.tomogram_path is not None and Path(text).resolve() != self.tomogram_path.resolve():
            self._set_aside_feature_layers(self.tomogram_path.name)
            networks = dict(self.models)
        self.volume, self.tomogram_path = volume, Path(text)
        self.given_voxel_size_A = used  # what apply passes; None: the file's own
        for name_ in ("models", "maps"):
            setattr(self, name_, {})
        self.labels_path = self.legend = self.picks = self.filament_picks = None
        self.preview_map = None
        self._known, self._not_loaded = set(), {}
        self._tiles = {}
        self.path_edit.setText(text)
        scale, translate = scale_translate(volume, cubic=True)
        layer = self._image_layer_of(Path(text), scale, translate)
        if layer is None:
            layer = self.viewer.add_image(
                volume.data,
                name=name,
                scale=scale,
                translate=translate,
                metadata={"path": text, "opened_by": _OPENED_BY},
            )
        else:  # opened again: the one layer shows the file as it is now
            layer.data, layer.scale, layer.translate = volume.data, scale, translate
        self.viewer.dims.set_current_step(0, volume.shape[0] // 2)
        mrc = Path(text).suffix.lower() in (".mrc", ".rec", ".map", ".st", ".ali")
        if used is None and not given and mrc and np.allclose(volume.voxel_size_A, 1.0):
            self.notify(  # what MRC writers put where the size was never set (a trial)
                f"{name} records 1 Å voxels, the size MRC headers hold where none was set; "
                "if its voxels are another size, enter it under 'Voxel size (Å)' and open "
                "it again.",
                error=False,
            )
        if used is None and given and not np.allclose(volume.voxel_size_A, given, rtol=1e-4):
            self.notify(
                f"{name} records {volume.pixel_size_A:g} Å voxels, which are used; the "
                f"'Voxel size (Å)' field ({given:g} Å) is only for files without one.",
                error=False,
            )
        from ..preprocess.check import beam_warning

        turned = beam_warning(volume, name)  # a volume not turned after reconstruction
        if turned:
            self.notify(turned, error=False)
        try:
            folder = self._work_folder()
        except ParameterError as err:
            self.notify(str(err))
        else:
            self._load_back(folder)
        self._keep_networks(networks)
        return layer

    def _keep_networks(self, networks: dict) -> None:
        """Keep the networks of the tomogram open before (``networks``: feature → model
        file) for Apply on this one, where its work folder has none of that feature and
        the network was trained at this tomogram's voxel size (within 5%, as apply
        requires), said (a trial: they were dropped, unsaid; a review: one of another
        voxel size made Apply refuse every network)."""
        from ..segment.modelfile import load_model

        kept, other = [], []
        for feature, model in networks.items():
            if feature in self.models or not Path(model).is_file():
                continue
            try:
                voxel = load_model(model).voxel_size_A
            except (TomoscribeError, OSError):
                continue
            if abs(voxel / self.volume.pixel_size_A - 1) > 0.05:
                other.append(f"{feature} ({voxel:g} Å)")
                continue
            self.models[feature] = model
            self._add_choice(feature)
            kept.append(f"{feature} (from {Path(model).parent.name})")
        if kept:
            self.notify(f"networks kept for Apply: {', '.join(kept)}.", error=False)
        if other:
            self.notify(
                f"networks not kept, trained at another voxel size than this tomogram's "
                f"{self.volume.pixel_size_A:g} Å: {', '.join(other)}.",
                error=False,
            )

    def _annotation_layers(self, feature: str) -> list:
        """The feature's box and paint layers on screen (those set aside excluded)."""
        kinds = ("positive boxes", "negative boxes", "paint")
        return [layer for kind in kinds if (layer := self._layer(f"{feature} {kind}")) is not None]

    def _track_edits(self, layer) -> None:
        """Count the edits of a box or paint layer (points added, moved or deleted; brush
        strokes, fills, data set)."""
        key = id(layer)

        def edited(_event=None) -> None:
            self._edits[key] = self._edits.get(key, 0) + 1

        layer.events.data.connect(edited)
        if hasattr(layer.events, "paint"):
            layer.events.paint.connect(edited)
        self._edits[key] = self._saved_edits[key] = 0  # a new layer (ids are reused)

    def _mark_saved(self, feature: str, counts: dict | None = None) -> None:
        """The feature's layers as saved: at ``counts`` (their edit counts when Save was
        pressed), else as they are now (made, or loaded back)."""
        for layer in self._annotation_layers(feature):
            key = id(layer)
            self._saved_edits[key] = (counts or {}).get(key, self._edits.get(key, 0))

    def _unsaved(self) -> list[str]:
        """The features any of whose box or paint layers on screen was edited since it
        was last saved or loaded back (a layer deleted takes its edits with it)."""
        features = set()
        for layer in self.viewer.layers:
            for kind in (" positive boxes", " negative boxes", " paint"):
                if layer.name.endswith(kind) and ": " not in layer.name:
                    key = id(layer)
                    if self._edits.get(key, 0) > self._saved_edits.get(key, 0):
                        features.add(layer.name[: -len(kind)])
        return sorted(features)

    def _check_nothing_unsaved(self) -> None:
        """Refuse to open a tomogram (again) over boxes or painting not yet saved: the
        work folder's copy would replace them on screen (a trial lost 81 painted voxels
        and a box, told only "loaded back")."""
        unsaved = self._unsaved() if self.volume is not None else []
        if unsaved:
            names = ", ".join(repr(f) for f in unsaved)
            raise ParameterError(
                f"{names} {'has' if len(unsaved) == 1 else 'have'} boxes or painting not "
                "saved yet; press Save first, or delete the feature's layers to discard them, "
                "then open again."
            )

    def _image_layer_of(self, path: Path, scale: tuple, translate: tuple):
        """The image layer ``path`` is open in, to show it again: this widget's, else
        another (File > Open's) where it lies as the widget places it (``scale``,
        ``translate``); None where there is none.  Another's layer placed otherwise
        (voxels that are not cubes, which tomoscribe takes as cubes) is left as it is,
        said (a trial: it was rescaled, and picks drawn on it moved 12 slices off)."""
        from napari.layers import Image

        opened = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and not layer.multiscale
            and layer.metadata.get("path")
            and Path(layer.metadata["path"]).resolve() == path.resolve()
        ]
        ours = [layer for layer in opened if layer.metadata.get("opened_by") == _OPENED_BY]
        if ours:
            return ours[0]
        for layer in opened:
            if np.allclose(layer.scale, scale) and np.allclose(layer.translate, translate):
                return layer
        for layer in opened[:1]:
            self.notify(
                f"File > Open's layer {layer.name!r} has voxels of {_sizes(layer.scale)} Å; "
                f"tomoscribe works on {_sizes(scale)} Å voxels (the x size in every axis), so "
                "it shows the tomogram in a layer of its own, where its boxes, painting, "
                f"maps and picks lie; points drawn on {layer.name!r} do not line up with it.",
                error=False,
            )
        return None

    def _set_aside_feature_layers(self, tomogram_name: str) -> None:
        """Rename the layers the widget drew on the tomogram open until now (boxes,
        outlines, paint, previews, suggested boxes, merged labels, picks) to
        ``TOMOGRAM: NAME``: kept for the user to see, never again taken as the new
        tomogram's (Save would have written its annotation as the new one's; a trial's
        previews lay over the next tomogram under their plain names)."""
        for layer in list(self.viewer.layers):
            ours = layer.name.endswith(_DRAWN_SUFFIXES) or layer.name == "labels"
            if ours and ": " not in layer.name:
                layer.name = f"{tomogram_name}: {layer.name}"

    def _load_back(self, folder: Path) -> None:
        """Load back what ``folder`` holds for this tomogram, per feature: boxes into
        the box layers, the painting into the paint layer, the model and its map (so
        Preview, Apply and Merge work); said in one notification.  A feature that
        cannot be loaded back is named with the reason, and Save and Train then refuse
        to overwrite its files."""
        from ..interactive.session import saved_features

        loaded, refused = [], []
        for saved in saved_features(folder, self.tomogram_path, self.volume.shape):
            if saved.problem:
                self._not_loaded[saved.feature] = saved.problem
                refused.append(f"{saved.feature} ({saved.problem})")
                continue
            self._known.update(p.resolve() for p in saved.files)
            what = []
            if saved.positives is not None or saved.painted is not None:
                self._feature_layers(saved.feature)
            if saved.positives is not None:
                for kind, centres in (("positive", saved.positives), ("negative", saved.negatives)):
                    self._layer(f"{saved.feature} {kind} boxes").data = centres
                what.append(f"{len(saved.positives)}+{len(saved.negatives)} boxes")
            if saved.painted is not None:
                self._layer(f"{saved.feature} paint").data = saved.painted
                what.append("painting")
            if saved.model is not None:
                self.models[saved.feature] = saved.model
                self._add_choice(saved.feature)
                what.append("network")
            if saved.map is not None:
                self.maps[saved.feature] = saved.map
                what.append("map")
            if saved.tile is not None:
                self._tiles[saved.feature] = saved.tile
                what.append(f"box {saved.tile} px")
            self._mark_saved(saved.feature)  # as loaded back
            loaded.append(f"{saved.feature} ({', '.join(what) or 'training set'})")
        if loaded and self.feature not in {item.split(" (")[0] for item in loaded}:
            self.feature_edit.setText(loaded[0].split(" (")[0])
        if self.feature in self._tiles:  # the box its training set was cut at (a trial:
            self.tile_edit.setValue(self._tiles[self.feature])  # 64 again, set rebuilt)
        self._draw_outlines()
        parts = []
        if loaded:
            parts.append(f"loaded back from {folder}: {', '.join(loaded)}")
        if refused:
            parts.append(
                f"not loaded from {folder}, and kept from being overwritten: {', '.join(refused)}"
            )
        if parts:
            self.notify("; ".join(parts) + ".", error=bool(refused))

    def _layer(self, name: str):
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # --- 2. annotate --------------------------------------------------------------------
    def start_feature(self, feature: str) -> None:
        """Points layers for positive and negative box centres, their outlines and a
        labels layer to paint the feature in (created once per feature); a name that
        cannot name files is refused."""
        self._guarded(self._start_feature, feature)

    def _start_feature(self, feature: str) -> None:
        from ..interactive.session import check_feature_name

        if self.volume is None:
            raise ParameterError("open a tomogram first.")
        feature = check_feature_name(feature)
        self.feature_edit.setText(feature)
        if feature in self._tiles:
            self.tile_edit.setValue(self._tiles[feature])
        self._feature_layers(feature)
        self.viewer.layers.selection.active = self._layer(f"{feature} paint")
        self._draw_outlines()

    def _feature_layers(self, feature: str) -> None:
        """The feature's box, outline and paint layers, made where missing (a paint
        layer of another grid, left from another tomogram, is made anew)."""
        scale, translate = scale_translate(self.volume, cubic=True)
        common = {"scale": scale, "translate": translate, "ndim": 3}
        for kind, colour in (("positive", "lime"), ("negative", "magenta")):
            name = f"{feature} {kind} boxes"
            if self._layer(name) is None:
                layer = self.viewer.add_points(name=name, face_color=colour, size=6, **common)
                layer.events.data.connect(lambda _e: self._draw_outlines())
                self._track_edits(layer)
        if self._layer(f"{feature} outlines") is None:
            self.viewer.add_shapes(
                name=f"{feature} outlines",
                edge_color="yellow",
                face_color="transparent",
                edge_width=1,
                **common,
            )
        paint = self._layer(f"{feature} paint")
        if paint is not None and paint.data.shape != tuple(self.volume.shape):
            self.viewer.layers.remove(paint)
            paint = None
        if paint is None:
            layer = self.viewer.add_labels(
                np.zeros(self.volume.shape, np.uint8),
                name=f"{feature} paint",
                scale=scale,
                translate=translate,
            )
            self._limit_brush(layer, feature)
            self._track_edits(layer)

    def _started(self) -> str:
        """The current feature, refused when its layers were not made yet."""
        from ..interactive.session import check_feature_name

        if self.volume is None:
            raise ParameterError("open a tomogram first.")
        feature = check_feature_name(self.feature)
        if any(
            self._layer(f"{feature} {kind}") is None
            for kind in ("positive boxes", "negative boxes", "paint")
        ):
            raise ParameterError(f"press Start / switch feature for {feature!r} first.")
        return feature

    def _limit_brush(self, layer, feature: str) -> None:
        """Keep napari's brush and fill inside the positive boxes (erasing, label 0,
        works anywhere): every finished stroke is an undo-history item that the layer's
        ``paint`` event carries as atoms of changes; voxels painted outside every
        positive box get their old values back."""

        def undo_outside(event):
            restored = False
            for atom in event.value:
                indices, old, new = _changes(atom)
                outside = (new != 0) & ~self._inside_positive_boxes(feature, indices)
                if outside.any():
                    layer.data[tuple(i[outside] for i in indices)] = old[outside]
                    restored = True
            if restored:
                layer.refresh()

        # napari emits the event before it writes the stroke into the array, so the
        # correction runs just after, from the event loop
        layer.events.paint.connect(lambda event: QTimer.singleShot(0, lambda: undo_outside(event)))

    def _inside_positive_boxes(self, feature: str, indices) -> np.ndarray:
        """Which voxels (index arrays z, y, x) lie in a positive box's tile."""
        points = self._layer(f"{feature} positive boxes")
        centres = (
            np.round(np.asarray(points.data)).reshape(-1, 3)
            if points is not None
            else np.empty((0, 3))
        )
        half = self.tile_edit.value() // 2
        z, y, x = (np.asarray(i)[:, None] for i in indices)
        inside = (
            (z == centres[:, 0])
            & (y >= centres[:, 1] - half)
            & (y < centres[:, 1] + half)
            & (x >= centres[:, 2] - half)
            & (x < centres[:, 2] + half)
        )
        return inside.any(axis=1)

    @property
    def feature(self) -> str:
        return self.feature_edit.text().strip()

    def add_box(self, zyx, positive: bool = True) -> None:
        """Add one box centre (voxel indices z, y, x), as a click in add mode does."""
        feature = self._started()
        layer = self._layer(f"{feature} {'positive' if positive else 'negative'} boxes")
        layer.add(np.asarray(zyx, float)[None])

    def boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative centres (z, y, x voxels) of the current feature."""
        feature = self._started()
        return tuple(
            np.asarray(self._layer(f"{feature} {k} boxes").data).reshape(-1, 3)
            for k in ("positive", "negative")
        )

    def _draw_outlines(self) -> None:
        layer = self._layer(f"{self.feature} outlines")
        if layer is None:
            return
        half = self.tile_edit.value() / 2
        rectangles = []
        for kind in ("positive", "negative"):
            points = self._layer(f"{self.feature} {kind} boxes")
            for z, y, x in np.asarray(points.data) if points is not None else []:
                rectangles.append(
                    np.array(
                        [
                            [z, y - half, x - half],
                            [z, y - half, x + half],
                            [z, y + half, x + half],
                            [z, y + half, x - half],
                        ]
                    )
                )
        layer.data = []
        if rectangles:
            layer.add_rectangles(rectangles, edge_color="yellow", face_color="transparent")

    def paint(self, mask: np.ndarray, value: int = 1) -> None:
        """Paint ``mask`` (bool, the tomogram's shape) inside the positive boxes, as the
        brush does (what lies outside every positive box is not painted)."""
        from ..interactive.annotation import painted_in_boxes

        layer = self._layer(f"{self._started()} paint")
        inside = painted_in_boxes(mask, self.boxes()[0], self.tile_edit.value()).astype(bool)
        data = np.asarray(layer.data)
        data[inside] = value
        layer.data = data

    def save_annotation(self):
        """Write boxes CSV + painted MRC + training set (``trainset``'s files) in a
        worker.  Returns the worker (``finished`` when done; ``annotation_saved`` then
        holds the training set's path), or None after a notification."""
        return self._guarded(self._save_annotation)

    def _save_annotation(self):
        self._check_idle()
        write = self._annotation_writer()

        feature, tile = self.feature, self.tile_edit.value()
        counts = {
            id(layer): self._edits.get(id(layer), 0) for layer in self._annotation_layers(feature)
        }

        def done(result):
            self.annotation_saved = result
            self._mark_saved(feature, counts)  # as they were when Save was pressed
            self._tiles[feature] = tile

        return self._start(write, done, f"saving {self.feature}")

    def _annotation_writer(self):
        """Check the annotation on the GUI thread (every check that reads no tile) and
        take what the worker needs: the boxes and the painting in their tiles (the
        painting goes on being editable).  Returns ``write()``, which writes
        :func:`~tomoscribe.interactive.annotation.save_annotation_and_training_set`'s
        files and says what it did; refused in one sentence before anything is written."""
        from ..interactive.annotation import (
            check_annotation,
            check_boxes,
            painted_in_boxes,
            save_annotation_and_training_set,
        )
        from ..segment.trainset import annotation_warnings

        feature = self._started()
        folder = self._work_folder()
        self._check_not_replacing(folder, feature, [f"{feature}{s}" for s in _ANNOTATION])
        self._wrote(folder, feature)  # this session's files from now on
        pos, neg = self.boxes()
        tile = self.tile_edit.value()
        painting = self._layer(f"{feature} paint").data
        pos = check_boxes(pos, self.volume.shape, "positive")
        limited = painted_in_boxes(painting, pos, tile)  # the tiles only: a snapshot
        check_annotation(self.volume, pos, neg, limited, tile)  # fast: tiles painted
        volume, tomogram, say = self.volume, self.tomogram_path, self._signals.said.emit

        def write() -> Path:
            outside = int(np.count_nonzero(painting)) - int(np.count_nonzero(limited))
            output, trainset = save_annotation_and_training_set(
                folder, feature, volume, pos, neg, limited, tile, 2, tomogram
            )
            say(
                f"saved {output.name}: {trainset.n_positive} positive and "
                f"{trainset.n_negative} negative tiles",
                False,
            )
            for warning in annotation_warnings(trainset.metadata, feature):
                say(warning, False)
            if outside:
                say(
                    f"{outside} painted voxels of {feature!r} lie outside every positive "
                    "box's tile and are not used; place a positive box on them to use them.",
                    False,
                )
            return output

        return write

    def _check_not_replacing(self, folder: Path, feature: str, names) -> None:
        """Refuse to write over a file of ``feature`` that this session neither loaded
        back nor wrote (an earlier annotation it would replace unseen)."""
        for name in names:
            path = folder / name
            if path.exists() and path.resolve() not in self._known:
                why = self._not_loaded.get(feature)
                raise ParameterError(
                    f"{path} holds an earlier annotation of {feature!r} that was not loaded "
                    f"back ({why}); move it away or choose another work folder."
                    if why
                    else f"{path} holds an earlier annotation of {feature!r} that this "
                    "session did not load; open the tomogram again to load it back, or "
                    "choose another work folder."
                )

    def _wrote(self, folder: Path, feature: str) -> None:
        """Remember the feature's files as this session's (it may write them again)."""
        from ..interactive.session import feature_files

        self._known.update(p.resolve() for p in feature_files(folder, feature))

    # --- 3. train -----------------------------------------------------------------------
    def _start(self, work, done, description: str, preload: tuple[str, ...] = ()):
        """Run ``work`` in a napari worker thread; ``done(result)`` back in the GUI
        (``preload``: modules the step imports, see :func:`.heap.frozen_heap`)."""
        from napari.qt.threading import create_worker

        if self.worker is not None and self.worker.is_running:
            self.notify("wait for the running step to finish, or cancel it.")
            return None
        self._cancel.clear()
        self._watch_close()
        self.status.setText(description)

        # errors go to _failed (a notification); without an "errored" connection given
        # here, superqt would also re-raise them in the event loop
        def in_frozen_heap():  # short garbage collections while it runs (heap.py)
            with frozen_heap(preload):
                return work()

        self.worker = create_worker(
            in_frozen_heap,
            _start_thread=False,
            _connect={
                "returned": lambda result: self._guarded(done, result),
                "errored": self._failed,
            },
        )
        self.worker.start()
        return self.worker

    def _watch_close(self) -> None:
        """Once the widget is docked: the viewer's window closing stops the running step
        (:meth:`shutdown`)."""
        root = self
        while root.parentWidget() is not None:
            root = root.parentWidget()
        if root is not self and self._close_watcher is None:
            self._close_watcher = _CloseWatcher(root, self.shutdown, parent=self)
            # closing the last window may end the event loop before the watcher's
            # deferred call runs: stop the step when the application quits, too
            app = QApplication.instance()
            if app is not None:
                app.aboutToQuit.connect(_quietly(weakref.WeakMethod(self.shutdown)))

    def showEvent(self, event):  # noqa: N802 (Qt's name)
        self._watch_close()
        super().showEvent(event)

    def _failed(self, err: Exception) -> None:
        self.status.setText("")
        if isinstance(err, Cancelled):
            self.notify("cancelled; run it again to continue where it stopped.", error=False)
        elif isinstance(err, (TomoscribeError, OSError)):
            self.notify(str(err))
        else:
            self.notify(_unexpected(err))

    def cancel(self) -> None:
        """Stop the running step at its next epoch or slab."""
        self._cancel.set()

    def shutdown(self, wait_s: float = 60.0) -> None:
        """The viewer is closing: cancel the running step (as *Cancel* does, so its
        lock and checkpoint are left as after a cancel), cut its signals from this
        widget, and wait up to ``wait_s`` seconds for it to stop, so it ends quietly."""
        self._cancel.set()
        worker = self.worker
        signals = [self._signals.progress, self._signals.epoch, self._signals.previewed]
        signals.append(self._signals.said)
        if worker is not None:
            signals += [worker.returned, worker.errored]
        for signal in signals:
            try:
                signal.disconnect()
            except (TypeError, RuntimeError):  # nothing connected, or already gone
                pass
        deadline = time.monotonic() + wait_s
        while worker is not None and worker.is_running and time.monotonic() < deadline:
            time.sleep(0.02)

    def _report(self, description: str, done: int, total) -> None:
        if self._cancel.is_set():
            raise Cancelled(description)
        self._signals.progress.emit(description, done, total or 0)

    def _on_progress(self, description: str, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.status.setText(f"{description}: {done}/{total}")

    def _on_epoch(self, record: dict, image: np.ndarray) -> None:
        """Show one more epoch: its record and the loss curve the worker drew."""
        from qtpy.QtGui import QImage, QPixmap

        if self.losses and record["epoch"] <= self.losses[-1]["epoch"]:
            self.losses = []  # a new attempt (or member): as the curve shows
        self.losses.append(record)
        self.progress.setValue(record["epoch"])
        height, width = image.shape[:2]
        qimage = QImage(image.data, width, height, 4 * width, QImage.Format_RGBA8888)
        self.loss_image.setMinimumHeight(height)
        self.loss_image.setPixmap(QPixmap.fromImage(qimage))  # copies the pixels

    def train(self, epochs: int | None = None, validation: float = 0.1, members: int | None = None):
        """Save the current feature's annotation and training set, then train its
        network (or an ensemble of ``members``) from it, all in a worker, as
        ``trainset`` and ``train`` do: ``validation`` of the boxes held out to measure
        the threshold, which then becomes the preview's.  The training's warnings are
        shown as they come (also when it fails); the loss curve shows the last attempt.

        Returns the worker (``finished`` when done), or None after a notification.
        """
        return self._guarded(self._train, epochs, validation, members)

    def _train(self, epochs, validation, members):
        self._check_idle()  # before anything is written
        feature = self._started()
        folder = self._work_folder()
        self._check_not_replacing(folder, feature, [f"{feature}.tsm"])
        output = folder / f"{feature}.tsm"
        # the model and its record as `train` checks them, before the annotation is
        # saved: a user's FEATURE.tsm.json refused training after three files were written
        check_outputs([output, sidecar_path(output)])
        write = self._annotation_writer()
        epochs = epochs or self.epochs_edit.value()
        members = members or self.members_edit.value()
        learning_rate = self.learning_rate_edit.value()
        self.losses = []
        self.loss_image.clear()
        plots, history = [], []  # drawn in the worker (made there), shown by _on_epoch
        self.progress.setMaximum(epochs)
        self.progress.setValue(0)
        say = self._signals.said.emit

        def epoch_done(record):
            self._report("training", record["epoch"], epochs)
            if history and record["epoch"] <= history[-1]["epoch"]:
                history.clear()  # a new attempt (or member): its curve alone
            history.append(record)
            if not plots:
                plots.append(LossPlot())
            self._signals.epoch.emit(record, plots[0].render(history))

        def work():
            # imported here: torch's first import would hold the GUI thread seconds
            from ..interactive.steps import train_model

            trainset_path = write()
            return train_model(
                trainset_path,
                output,
                epochs=epochs,
                learning_rate=learning_rate,
                validation=validation,
                members=members,
                on_epoch=epoch_done,
                say=lambda message: say(message, False),
            )

        def done(model):
            self.models[feature] = output
            self._known.update(p.resolve() for p in (output, sidecar_path(output)))
            self.trained = model
            self._set_threshold(model.threshold)  # as measured
            loss = f"loss {self.losses[-1]['train_loss']:.3f}, " if self.losses else ""
            self.status.setText(f"trained {feature}: {loss}threshold {model.threshold:g}")
            self._add_choice(feature)

        # the first optimiser imports torch._dynamo (torch._compile._disable_dynamo)
        return self._start(work, done, f"training {feature}", preload=("torch._dynamo",))

    def _add_choice(self, feature: str) -> None:
        if self.pick_feature_edit.findText(feature) < 0:
            self.pick_feature_edit.addItem(feature)

    # --- 4. preview ---------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        return self.threshold_slider.value() / 100.0

    def _set_threshold(self, value: float) -> None:
        """Move the slider as the widget does (a measured threshold): Merge's field is
        left as it is, so the feature keeps merging at its measured threshold."""
        self._setting_threshold = True
        try:
            self.threshold_slider.setValue(round(100 * value))
        finally:
            self._setting_threshold = False

    def _threshold_moved(self) -> None:
        """The slider moved: redraw the preview and, when the user moved it, put the
        shown feature's threshold into Merge's Thresholds field (what Merge uses)."""
        self.threshold_label.setText(f"{self.threshold:.2f}")
        self._show_threshold()
        if self._setting_threshold:
            return
        shown = getattr(self, "preview_map", None)
        feature = shown[0] if shown is not None else self.feature
        if not feature:
            return
        entries = [
            item.strip()
            for item in self.thresholds_edit.text().split(",")
            if item.strip() and item.partition("=")[0].strip() != feature
        ]
        self.thresholds_edit.setText(", ".join([*entries, f"{feature}={self.threshold:g}"]))

    def preview(
        self, z: int | None = None, feature: str | None = None, neighbours: int | None = None
    ):
        """The feature's network on the displayed slice and ``neighbours`` slices either
        side (default: the field's), in a worker; shown as one overlay of the voxels at
        or above the threshold, on those slices (stepping through them needs no new
        preview).  The displayed slice is shown first (within the preview's second),
        the neighbours when they are done.  Returns the worker or None."""
        from ..interactive.steps import preview_slices, preview_with_spread
        from ..segment.modelfile import load_model

        feature = feature or self.feature
        if feature not in self.models:
            self.notify(f"no trained network for {feature!r} yet; train it first.")
            return None
        z = int(self.viewer.dims.current_step[0]) if z is None else int(z)
        n = self.neighbours_edit.value() if neighbours is None else int(neighbours)
        model_path, volume = self.models[feature], self.volume

        def work():
            model = load_model(model_path)
            if n > 0:
                self._signals.previewed.emit(feature, z, preview_slices(model, volume, z))
                if self._cancel.is_set():
                    raise Cancelled("preview")
            return preview_with_spread(model, volume, z, neighbours=n)

        def done(answers_spread):
            answers, spread = answers_spread
            self._on_preview(feature, max(0, z - n), answers, spread)  # clipped at the ends

        return self._start(work, done, f"preview of slice {z}")

    def _on_preview(self, feature: str, z0: int, answers: np.ndarray, spread=None) -> None:
        self.preview_map = (feature, z0, answers)
        self.preview_spread = spread  # an ensemble's spread on the same slices, else None
        self._show_threshold()
        self.status.setText(
            f"preview of {feature} on slices {z0}–{z0 + len(answers) - 1}"
            if len(answers) > 1
            else f"preview of {feature} on slice {z0}"
        )

    def previewed(self, z: int) -> np.ndarray | None:
        """The previewed map of slice ``z`` (float32 (ny, nx)), or None."""
        if getattr(self, "preview_map", None) is None:
            return None
        _, z0, answers = self.preview_map
        return answers[z - z0] if 0 <= z - z0 < len(answers) else None

    def _show_threshold(self) -> None:
        if getattr(self, "preview_map", None) is None:
            return
        feature, z0, answers = self.preview_map
        scale, translate = scale_translate(self.volume, cubic=True)
        shown = (answers >= self.threshold).astype(np.uint8)
        name = f"{feature} preview"
        layer = self._layer(name)
        if layer is None or layer.data.shape != shown.shape:
            if layer is not None:
                self.viewer.layers.remove(name)
            layer = self.viewer.add_labels(shown, name=name, scale=scale, opacity=0.5)
        layer.data = shown
        layer.translate = (translate[0] + z0 * scale[0], *translate[1:])

    def suggest_tiles(self, count: int = 5):
        """Points on the displayed slice (else the centre of the previewed ones) where
        the network is least sure (an ensemble: where its networks disagree most): the
        next boxes to annotate (:func:`tomoscribe.interactive.steps.uncertain_tiles`)."""
        from ..interactive.steps import uncertain_tiles

        if getattr(self, "preview_map", None) is None:
            self.notify("preview a slice first.")
            return None
        feature, z0, answers = self.preview_map
        z = int(self.viewer.dims.current_step[0])
        if self.previewed(z) is None:
            z = z0 + len(answers) // 2
        positives, negatives = (
            self.boxes()
            if self._layer(f"{feature} positive boxes") is not None
            else (np.empty((0, 3)),) * 2
        )
        placed = np.vstack([positives, negatives])
        placed = placed[np.round(placed[:, 0]) == z][:, 1:]
        spread = getattr(self, "preview_spread", None)
        centres = uncertain_tiles(
            self.previewed(z),
            self.threshold,
            self.tile_edit.value(),
            count,
            avoid_yx=placed,
            spread=None if spread is None else spread[z - z0],
        )
        points = np.column_stack([np.full(len(centres), z), centres])
        name = f"{feature} suggested boxes"
        if self._layer(name) is not None:
            self.viewer.layers.remove(name)
        scale, translate = scale_translate(self.volume, cubic=True)
        self.viewer.add_points(
            points,
            name=name,
            symbol="square",
            size=10,
            face_color="orange",
            scale=scale,
            translate=translate,
        )
        return points

    def _slice_changed(self, _event=None) -> None:
        """With *follow the slice*: a new preview once the slider leaves the slab."""
        z = int(self.viewer.dims.current_step[0])
        if (
            self.follow.isChecked()
            and self.models
            and (self.worker is None or not self.worker.is_running)
            and (self.previewed(z) is None or self.preview_map[0] != self.feature)
        ):
            self.preview()

    # --- 5. apply, merge, vesicles, pick, export ----------------------------------------
    def apply(self, features=None):
        """Segment the whole tomogram with the trained models (resumable) in a worker."""
        from ..interactive.steps import apply_models
        from ..progress import observe

        features = list(features or self.models)
        if not features:
            self.notify("train a network first.")
            return None
        models = [self.models[f] for f in features]
        # the voxel size the tomogram was opened with where its file has none
        tomogram, voxel = self.tomogram_path, self.given_voxel_size_A
        out_dir = self._work_folder() / "maps"

        def work():
            with observe(self._report):
                return apply_models(tomogram, models, out_dir, voxel_size_A=voxel)

        def done(written):
            for item in written:
                self.maps[item.model.feature] = item.path
                if item.warning:
                    self.notify(item.warning, error=False)
            self.status.setText(
                f"wrote {len(written)} maps to {out_dir}: "
                + ", ".join(
                    f"{item.model.feature} {100 * item.marked_fraction:.2f}% marked"
                    for item in written
                )
            )

        return self._start(work, done, "applying")

    def _thresholds(self) -> dict:
        out = {}
        for item in self.thresholds_edit.text().split(","):
            name, _, value = item.partition("=")
            if name.strip():
                try:
                    out[name.strip()] = float(value)
                except ValueError:  # named as typed ("got nan" said nothing of it)
                    raise ParameterError(
                        f"'Thresholds' holds {item.strip()!r}, which is not feature=number; "
                        "write e.g. membrane=0.8, ribosome=1.2."
                    ) from None
        return out

    def _erasers(self) -> list[str]:
        return [s.strip() for s in self.erasers_edit.text().split(",") if s.strip()]

    def merge(self, thresholds: dict | None = None, erasers=()):
        """Merge the applied maps into a label map shown with its legend's colours."""
        return self._guarded(self._merge, thresholds or {}, list(erasers))

    def _merge(self, thresholds: dict, erasers: list[str]):
        from ..interactive.steps import merge_maps
        from ..io import read_volume

        if not self.maps:
            raise ParameterError("apply the networks to the tomogram first.")
        features = list(self.maps)
        labels = self._work_folder() / "labels.mrc"
        _check_fixed_names(labels, "the merge")
        output, legend = merge_maps(
            [self.maps[f] for f in features], features, labels, thresholds, erasers
        )
        return self._show_labels(read_volume(output), legend, output)

    def _show_labels(self, labels, legend, path: Path):
        from napari.utils.colormaps import DirectLabelColormap

        self.labels_path, self.legend, self.labels = path, legend, labels
        scale, translate = scale_translate(labels, cubic=True)
        name = "labels"
        if self._layer(name) is not None:
            self.viewer.layers.remove(name)
        layer = self.viewer.add_labels(
            np.asarray(labels.data),
            name=name,
            scale=scale,
            translate=translate,
            metadata={"legend": legend.as_dict()},
            colormap=DirectLabelColormap(color_dict=legend_colormap(legend)),
        )
        for label, entry in legend:
            if label != 0:
                self._add_choice(entry.name)
        self.status.setText(
            "legend: " + ", ".join(f"{label}={entry.name}" for label, entry in legend if label != 0)
        )
        return layer

    def close_vesicles(self, feature: str = "membrane"):
        """Close spherical vesicles of the merged map (in a worker)."""
        from ..interactive.steps import close_vesicles_in
        from ..io import read_volume

        if self.labels_path is None:
            self.notify("merge first.")
            return None
        labels, legend = self.labels, self.legend
        output = self._work_folder() / "labels_closed.mrc"
        try:
            _check_fixed_names(output, "closing vesicles")
        except OutputError as err:
            self.notify(str(err))
            return None

        def work():
            close_vesicles_in(labels, legend, output, feature)
            return read_volume(output)

        return self._start(work, lambda v: self._show_labels(v, legend, output), "closing vesicles")

    def pick(
        self,
        feature: str,
        filament: bool = False,
        spacing: float = 10.0,
        radius_nm: float | None = None,
    ):
        """Pick the feature's particles in the merged map, or with ``filament`` seeds
        every ``spacing`` voxels along its traced filaments (tube of ``radius_nm``, else
        the radius known for the name); shown as points.  Returns the picks table."""
        return self._guarded(self._pick, feature, filament, spacing, radius_nm)

    def _pick(self, feature: str, filament: bool, spacing: float, radius_nm):
        from ..interactive.filaments import pick_filaments
        from ..interactive.steps import pick_feature
        from ..segment.modelfile import load_model

        if self.labels_path is None:
            raise ParameterError("merge first.")
        self.filament_picks = None
        if filament:
            from ..io.provenance import tilt_range_for

            # the wedge that hides tubes' walls: as the merged map records it, else ±60°
            tilt = tilt_range_for([self.labels_path]).deg
            self.filament_picks = pick_filaments(
                self.labels, self.legend, feature, spacing, radius_nm, tilt
            )
            table = self.filament_picks.seeds
        else:
            size = (
                load_model(self.models[feature]).metadata.get("painted_size")
                if feature in self.models
                else None
            )
            learned = size is not None
            picked = pick_feature(self.labels, self.legend, feature, size)
            table = picked[0]
        self.picks = (feature, table)
        self._show_points(f"{feature} picks", table[["z", "y", "x"]].to_numpy(float), "cyan", 5)
        if filament:
            self._show_points(
                f"{feature} centrelines", np.vstack(self.filament_picks.lines), "yellow", 1.5
            )
            self.status.setText(
                f"{len(table)} seeds on {len(self.filament_picks.filaments)} {feature} filaments"
            )
        else:
            from ..structure import picking

            _, params = picked
            left_out = table.attrs.get("left_out")
            said = [  # the widget has no size field: the painting is what sets them
                picking.too_large_sentence(left_out, params.max_size, learned, _PAINT_WHOLE),
                picking.too_small_sentence(
                    left_out, params.min_size, len(table), learned, _PAINT_TIGHTER
                ),
            ]
            if not said[1]:
                said.append(
                    picking.none_picked_sentence(
                        left_out, params.min_size, len(table), _PAINT_TIGHTER
                    )
                )
            said = [sentence for sentence in said if sentence]
            self.status.setText("; ".join([f"{len(table)} {feature} picks", *said]))
        return table

    def _show_points(self, name: str, zyx: np.ndarray, colour: str, size: float):
        """(Re)place a points layer on the label map's grid."""
        scale, translate = scale_translate(self.labels, cubic=True)
        if self._layer(name) is not None:
            self.viewer.layers.remove(name)
        return self.viewer.add_points(
            zyx, name=name, size=size, face_color=colour, scale=scale, translate=translate
        )

    def export(self, names):
        """Write the picks to files in the work folder (STAR, IMOD, CSV, copick JSON);
        filament picks also write the per-filament table (``FIRST_filaments.csv``), as
        ``pick --filament`` does."""
        return self._guarded(self._export, names)

    def _export(self, names):
        from ..interactive.filaments import write_filament_table
        from ..interactive.steps import export_picks
        from ..io.particles import map_tomogram_name, tomogram_stem
        from ..outputs import check_writable

        if self.picks is None:
            raise ParameterError("pick first.")
        feature, table = self.picks
        if not len(table):  # empty files, some unreadable (a .mod of no object): a trial
            raise ParameterError(
                f"there are no {feature} picks to export; pick again (another threshold, "
                "or a painting of whole particles) first."
            )
        paths = [Path(n) if Path(n).is_absolute() else self._work_folder() / n for n in names]
        if not paths:
            raise ParameterError("name at least one picks file to write.")
        filaments = self.filament_picks
        table_path = None
        if filaments is not None:
            table_path = paths[0].with_name(tomogram_stem(paths[0]) + "_filaments.csv")
            check_writable(table_path)  # before the first picks file is written
        # rlnTomoName as `pick` names it: the tomogram's recorded name, else its stem.
        if self.labels_path is not None:
            tomo_name = map_tomogram_name(self.labels_path)
        else:
            tomo_name = tomogram_stem(self.tomogram_path)
        written = export_picks(table, paths, self.labels, feature, tomo_name)
        if table_path is not None:
            written.append(write_filament_table(filaments, table_path, feature, [self.labels_path]))
        self.notify("wrote " + ", ".join(p.name for p in written), error=False)
        return written
