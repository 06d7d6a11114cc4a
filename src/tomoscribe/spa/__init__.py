"""Single-particle tools on micrographs: the two-network CNN picker (``trainset``,
``network``, ``picking``), the reference-based NCC baseline (``reference``) and scores
against simulated truth (``scoring``)."""
