"""The ground floor: what every pipeline stage shares.

Device choice (:mod:`.device`), rotations and their Euler conventions
(:mod:`.rotations`), the missing wedge (:mod:`.wedge`), 2D transforms between images
(:mod:`.transforms2d`), box centres (:mod:`.boxes`), tube cross-sections
(:mod:`.tubes`), the label-map legend (:mod:`.legend`) and acquisition records (the
tilt range that travels with the data, :mod:`.acquisition`).  Modules here import
nothing of tomoscribe but the shared root modules (``errors``, ``volume``, ...).
"""
