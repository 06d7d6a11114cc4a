"""The interactive annotation loop as library steps (what the napari plugin calls).

``annotation``: boxes + painting from a viewer → the files and training set of
``tomoscribe trainset``.  ``steps``: train, preview one slice, apply, merge, vesicles,
pick and export, each through the functions the matching command calls.
"""
