"""The animal-wise train/val/test split: whole animals move, never samples, so no animal (and no recording session)
can leak from training into evaluation.

Animals differ in size and in which pH classes their sessions hold, so the split is a small assignment problem:
1. coverage: for each class, rarest first, every split lacking it receives an unplaced animal that holds it (train
   first, then val, then test) while such animals remain; the rare Transitional class would otherwise easily miss
   val or test;
2. balance: the other animals, one by one, join the split where the cost grows least;
3. refinement: single moves and pairwise swaps between splits while they lower the cost and keep every class that
   a split holds (greedy placement alone gets stuck with lumpy animals).
The cost is the squared relative deviation from the requested fraction, summed over the splits, the classes and the
sample total. The seed sets the order in which animals are considered, so different seeds give different, equally
balanced splits (for repeated experiments), a given seed always the same one, whatever the order of the rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from fume_edge.data.records import Sample
from fume_edge.labels import PH_CLASS_NAMES

SPLITS: tuple[str, ...] = ("train", "val", "test")
_MAX_PASSES = 50


def _cost(filled: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cost per row of `filled` (…, columns) against the matching `target` fractions (…, 1)."""
    return ((filled / target - 1.0) ** 2).sum(axis=-1)


def _refine(split_of: np.ndarray, counts: np.ndarray, share: np.ndarray, target: np.ndarray) -> None:
    """Improve `split_of` in place by moves and swaps that lower the cost and keep each split's classes."""
    n, k = len(split_of), len(target)
    counts = np.vstack([counts, np.zeros(counts.shape[1])])  # row n: "nobody", so a move is a swap with nobody
    share = np.vstack([share, np.zeros(share.shape[1])])
    classes = counts.shape[1] - 1
    for _ in range(_MAX_PASSES):
        improved = False
        for a in range(n):
            sa = split_of[a]
            filled = np.stack([share[:n][split_of == s].sum(axis=0) for s in range(k)])
            held = np.stack([counts[:n][split_of == s].sum(axis=0) for s in range(k)])
            others = np.flatnonzero(split_of != sa)
            partners = np.concatenate([others, np.full(k - 1, n)])
            dest = np.concatenate([split_of[others], [s for s in range(k) if s != sa]])
            new_a = filled[sa] - share[a] + share[partners]
            new_b = filled[dest] - share[partners] + share[a]
            delta = (
                _cost(new_a, target[sa])
                - _cost(filled[sa], target[sa])
                + _cost(new_b, target[dest][:, None])
                - _cost(filled[dest], target[dest][:, None])
            )
            keeps_a = ((held[sa] - counts[a] + counts[partners])[:, :classes] > 0) >= (held[sa, :classes] > 0)
            keeps_b = ((held[dest] - counts[partners] + counts[a])[:, :classes] > 0) >= (held[dest, :classes] > 0)
            delta[~(keeps_a.all(axis=1) & keeps_b.all(axis=1))] = np.inf
            best = int(np.argmin(delta))
            if delta[best] < -1e-12:
                split_of[a] = dest[best]
                if partners[best] < n:
                    split_of[partners[best]] = sa
                improved = True
        if not improved:
            return


def assign_animals(counts: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Split index (into `SPLITS`) for each animal, from its per-class sample `counts` (animals, classes)."""
    counts = np.hstack([counts, counts.sum(axis=1, keepdims=True)])  # the total follows the fractions too
    n, classes = counts.shape[0], counts.shape[1] - 1
    share = counts / np.maximum(counts.sum(axis=0), 1.0)  # what each animal contributes to each column
    wanted = np.asarray(fractions, dtype=float)
    active = np.flatnonzero(wanted > 0)
    target = wanted[active]
    order = np.random.default_rng(seed).permutation(n)
    split_of = np.full(n, -1)
    for c in np.argsort(counts[:, :classes].sum(axis=0), kind="stable"):  # 1. coverage
        candidates = [a for a in order if counts[a, c] > 0 and split_of[a] < 0]
        for s in range(len(active)):
            if not (counts[split_of == s, c] > 0).any() and candidates:
                split_of[candidates.pop(0)] = s
    for a in order:  # 2. balance
        if split_of[a] < 0:
            filled = np.stack([share[split_of == s].sum(axis=0) for s in range(len(active))])
            split_of[a] = int(np.argmin(_cost(filled + share[a], target[:, None]) - _cost(filled, target[:, None])))
    _refine(split_of, counts, share, target)  # 3. refinement
    return active[split_of]


def split_by_animal(samples: Sequence[Sample], fractions: Sequence[float], seed: int) -> dict[str, list[Sample]]:
    """`samples` divided into `SPLITS` by animal (see the module docstring)."""
    by_animal: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_animal[sample.animal_id].append(sample)
    animals = sorted(by_animal)
    counts = np.zeros((len(animals), len(PH_CLASS_NAMES)))
    for a, animal in enumerate(animals):
        for sample in by_animal[animal]:
            counts[a, sample.ph_class] += 1
    split_of = dict(zip(animals, assign_animals(counts, fractions, seed), strict=True)) if animals else {}
    splits: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for sample in samples:
        splits[SPLITS[split_of[sample.animal_id]]].append(sample)
    return splits
