"""Subtomogram classification: 3D CNNs (Xu et al. 2017 and ours) and the RIF-SVM baseline."""
