"""Simulated data with ground truth.

``shapes`` makes geometric phantoms (membrane-like shells, filaments, blobs in noise)
for fast tests of segmentation; the physically faithful simulator (atomic models,
tilt series, CTF, reconstruction) builds on the same ground-truth conventions.
"""
