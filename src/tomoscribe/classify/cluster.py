"""Clustering a structural feature space: k-means over-partitioning and 2D maps.

Xu et al. 2017 take the outputs of a trained classifier's last linear layer as the
structural features of subtomograms and over-partition them with k-means (k = 100 for
23 classes): a structure the network never saw tends to fall into clusters of its
own, which reference-free averaging then turns into maps (:mod:`.discover`).

k-means, the scores and t-SNE come from scikit-learn; UMAP is used when the
``umap-learn`` package is installed and asked for.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidDataError, ParameterError


def _checked(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) == 0:
        raise InvalidDataError(
            f"features must be a non-empty table (N, d), got shape {features.shape}."
        )
    if not np.isfinite(features).all():
        raise InvalidDataError("the features contain NaN or infinite values.")
    return features


def standardise(features: np.ndarray) -> np.ndarray:
    """Each feature column to mean 0 and standard deviation 1 (constant columns to 0)."""
    features = _checked(features)
    sd = features.std(0)
    sd[sd == 0] = 1.0
    return (features - features.mean(0)) / sd


def over_partition(
    features: np.ndarray, k: int = 100, seed: int = 0, scale: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """k-means clusters of a feature table.

    Parameters
    ----------
    features : (N, d) array
    k : int
        Number of clusters (Xu et al. use 100, several times the number of structures).
    scale : bool
        Standardise the columns first.

    Returns
    -------
    clusters : (N,) int in ``range(k)``, numbered by decreasing size, none empty
    centres : (k, d) array in the (scaled) feature space

    Raises
    ------
    ParameterError
        ``k`` is not between 1 and the number of subtomograms.
    InvalidDataError
        Fewer than ``k`` distinct feature rows (duplicated subtomograms): some
        clusters would be empty.
    """
    from sklearn.cluster import KMeans

    data = standardise(features) if scale else _checked(features)
    if not 1 <= k <= len(data):
        raise ParameterError(
            f"k must be between 1 and the number of subtomograms ({len(data)}), got {k}."
        )
    distinct = len(np.unique(data, axis=0))
    if distinct < k:  # k-means would leave clusters empty (their averages NaN)
        raise InvalidDataError(
            f"the features hold only {distinct} distinct subtomograms of {len(data)} "
            f"(some are listed more than once, or identical), so there cannot be {k} "
            f"clusters; ask for at most {distinct}."
        )
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(data)
    sizes = np.bincount(model.labels_, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    renumber = np.empty(k, int)
    renumber[order] = np.arange(k)
    return renumber[model.labels_], model.cluster_centers_[order]


def cluster_scores(true_labels: np.ndarray, clusters: np.ndarray, class_names: list[str]) -> dict:
    """How well clusters follow known classes, over the labelled subtomograms.

    Parameters
    ----------
    true_labels : (N,) int
        Class indices into ``class_names``; −1 (unknown) is left out of every score.
    clusters : (N,) int
        Cluster of each subtomogram.
    class_names : list of str

    Returns
    -------
    dict with ``n_labelled`` and ``n_unlabelled`` (counts), ``purity`` (fraction of
    subtomograms in a cluster whose majority class is their own), ``adjusted_rand``
    and ``normalised_mutual_information`` (scikit-learn), and ``per_class``: for each
    class, ``isolated`` (fraction of its subtomograms in clusters where it is the
    majority) and ``clusters`` (how many such clusters).

    Raises
    ------
    InvalidDataError
        No subtomogram is labelled.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    true_labels, clusters = np.asarray(true_labels), np.asarray(clusters)
    if true_labels.shape != clusters.shape:
        raise InvalidDataError(
            f"{len(true_labels)} labels but {len(clusters)} cluster assignments."
        )
    known = true_labels >= 0
    if not known.any():
        raise InvalidDataError("no subtomogram is labelled (all -1): there is nothing to score.")
    n_unlabelled = int((~known).sum())
    true_labels, clusters = true_labels[known], clusters[known]
    majority = {}
    for cluster in np.unique(clusters):
        members = true_labels[clusters == cluster]
        majority[int(cluster)] = int(np.bincount(members).argmax())
    majority_of = np.array([majority[int(c)] for c in clusters])
    own = majority_of == true_labels
    per_class = {}
    for index, name in enumerate(class_names):
        members = true_labels == index
        if members.any():
            per_class[name] = {
                "isolated": float(own[members].mean()),
                "clusters": sum(1 for v in majority.values() if v == index),
            }
    return {
        "n_labelled": int(known.sum()),
        "n_unlabelled": n_unlabelled,
        "purity": float(own.mean()),
        "adjusted_rand": float(adjusted_rand_score(true_labels, clusters)),
        "normalised_mutual_information": float(normalized_mutual_info_score(true_labels, clusters)),
        "per_class": per_class,
    }


def embed_2d(features: np.ndarray, method: str = "tsne", seed: int = 0):
    """A 2D map of a feature table for plotting.

    Parameters
    ----------
    method : {"tsne", "umap", "auto"}
        ``auto`` takes UMAP when ``umap-learn`` is installed, t-SNE otherwise.

    Returns
    -------
    (N, 2) array, name of the method used
    """
    data = standardise(features)
    if method not in ("tsne", "umap", "auto"):
        raise ParameterError(f"method must be tsne, umap or auto, got {method!r}.")
    if method in ("umap", "auto"):
        try:
            import umap  # optional
        except ImportError:
            if method == "umap":
                raise ParameterError(
                    "UMAP needs the umap-learn package; install it or use `method=tsne`.",
                    parameter="method",
                ) from None
        else:
            return umap.UMAP(random_state=seed).fit_transform(data), "umap"
    from sklearn.manifold import TSNE

    if len(data) < 5:
        raise ParameterError(f"a t-SNE map needs at least 5 subtomograms, got {len(data)}.")
    perplexity = float(min(30.0, (len(data) - 1) / 3))
    xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(data)
    return xy, "t-SNE"
