"""Tube cross-sections shared by the filament simulator and the filament tracer."""

#: Inner / outer radius of a hollow tube (microtubule: 8.5 / 12.5 nm).
HOLLOW_INNER_FRACTION = 0.68
