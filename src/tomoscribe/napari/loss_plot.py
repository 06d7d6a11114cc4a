"""The training's loss curve, drawn off the event loop.

Why not a matplotlib Qt canvas: drawing even this small figure costs the GUI thread
80–140 ms of Python (layout, ticks, legend, Agg), and while the training worker also
wants the GIL that stretched to 250–380 ms per epoch, the longest stall of the viewer
while training (``benchmarks/bench_napari.py``).  Here the figure is an Agg canvas (no
pyplot, one figure per widget, only ever touched by the thread that renders it) drawn
in the worker thread after each epoch; the GUI thread only shows the finished RGBA
image as a pixmap (about a millisecond).
"""

from __future__ import annotations

import numpy as np


class LossPlot:
    """A small figure of training and validation loss (log MSE) against the epoch.

    Parameters
    ----------
    size_in : (width, height) in inches, at ``dpi`` dots per inch.
    """

    def __init__(self, size_in: tuple[float, float] = (3.0, 1.6), dpi: int = 100):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=size_in, dpi=dpi, tight_layout=True)
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_subplot()
        self.axes.set_xlabel("epoch", fontsize=7)
        self.axes.set_ylabel("log MSE", fontsize=7)
        self.axes.tick_params(labelsize=6)
        (self.train_line,) = self.axes.plot([], [], label="train")
        (self.validation_line,) = self.axes.plot([], [], label="validation")

    def render(self, history: list[dict]) -> np.ndarray:
        """The figure with ``history`` (records with ``epoch``, ``train_loss`` and
        ``validation_loss``, None where there was no validation) as an RGBA image,
        uint8 (height, width, 4)."""
        epochs = [r["epoch"] for r in history]
        self.train_line.set_data(epochs, [r["train_loss"] for r in history])
        validated = [
            (r["epoch"], r["validation_loss"]) for r in history if r["validation_loss"] is not None
        ]
        self.validation_line.set_data(*(zip(*validated) if validated else ([], [])))
        shown = [self.train_line] + ([self.validation_line] if validated else [])
        self.axes.legend(handles=shown, fontsize=6)  # no entry for a curve not drawn
        self.axes.relim()
        self.axes.autoscale_view()
        self.canvas.draw()
        return np.array(self.canvas.buffer_rgba(), copy=True)
