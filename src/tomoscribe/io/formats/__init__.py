"""Particle-file formats: one module per format, registered in :mod:`.registry`."""

from .registry import ParticleFormat, format_for, formats, suffixes

__all__ = ["ParticleFormat", "format_for", "formats", "suffixes"]
