"""Segmentation: training sets, networks, training, the engine that applies them, the
merge of features, and closing vesicles (see docs/architecture.md)."""
