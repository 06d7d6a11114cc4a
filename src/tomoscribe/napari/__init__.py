"""napari plugin (npe2, ``napari.yaml``): readers and the annotation widget.

Needs the optional extra ``tomoscribe[napari]``.  The widget only gathers inputs and
calls :mod:`tomoscribe.interactive` (the same library functions the commands call).
"""
