"""The ground floor: what every pipeline stage shares.

Device choice (:mod:`.device`), rotations and their Euler conventions
(:mod:`.rotations`), the missing wedge (:mod:`.wedge`), 2D transforms between images
(:mod:`.transforms2d`), box centres (:mod:`.boxes`) and tube cross-sections
(:mod:`.tubes`).  Modules here import nothing of tomoscribe but the shared root
modules (``errors``, ``volume``, ...).
"""
