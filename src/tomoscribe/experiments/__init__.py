"""Experiment harnesses: runs on simulated data that measure the library against the truth.

- :mod:`.demo` (``tomoscribe demo``): simulated cell tomograms → annotation → networks →
  segmentation and merge → ribosome picking, cleaning and averaging → scores;
- :mod:`.clem` (``tomoscribe clem pipeline`` and ``clem simulate``): simulated correlative
  fluorescence → registration → watershed → label transfer → self-training → scores
  against a network trained by a simulated human;
- :mod:`.steps`: what both share (simulate and preprocess a tomogram, annotate as a
  human would, train and reload a network);
- :mod:`.demo_report`, :mod:`.clem_report`: their HTML reports.

No library package imports this one (an import-linter contract in pyproject.toml).
"""
