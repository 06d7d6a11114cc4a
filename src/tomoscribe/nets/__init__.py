"""Networks: the registry of architectures, the one weights file, the training skeleton.

Below every stage that trains or applies a network (``segment``, ``classify``): the
architectures (:mod:`.chen2017`, :mod:`.unet2d`, :mod:`.classifiers3d`,
:mod:`.autoencoder3d`, :mod:`.unet3d`) register by name with a typed contract
(:mod:`.registry`, :mod:`.catalogue`); every model file is read and written by
:mod:`.weightsfile`; every training loop runs on :mod:`.training`.
"""
