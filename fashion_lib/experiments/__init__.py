"""The study's experiments, as library functions the notebooks call (STYLE.md: notebooks load, call, plot, glue).

- Table 1 (FashionAI NE, COCO AP), its controls and ablations, one module per job:
  :mod:`~fashion_lib.experiments.keypoints` (set-up, data, detectors and their detections),
  :mod:`~fashion_lib.experiments.keypoint_rows` (the rows per seed, the fill rule's calibration),
  :mod:`~fashion_lib.experiments.keypoint_scores` (NE and AP for the bootstrap),
  :mod:`~fashion_lib.experiments.keypoint_errors` (per-point errors: COCO persons, limbs, fills),
  :mod:`~fashion_lib.experiments.keypoint_refiner` (what the refiner did, the axis-once analysis),
  :mod:`~fashion_lib.experiments.keypoint_text` (the pages' sentences),
  :mod:`~fashion_lib.experiments.prior_map` (page 16's grid of worlds) and
  :mod:`~fashion_lib.experiments.claims` (a page's comparisons judged and glued).
- Tables 2 and 3 (FashionAI and DeepFashion attributes) and Fig. 3, one module per job:
  :mod:`~fashion_lib.experiments.attribute_data` (set-up, data, the detector's crop key points),
  :mod:`~fashion_lib.experiments.attribute_training` (training and scoring the networks, early stopping, learning
  curves), :mod:`~fashion_lib.experiments.table2` (Table 2 and the beta ablation),
  :mod:`~fashion_lib.experiments.table3` (Table 3) and :mod:`~fashion_lib.experiments.figure3` (Fig. 3).

Trained models and cached predictions live in one folder shared by every notebook (:func:`runs_dir`), named by a
hash of everything that shapes them (settings, data, the library's own sources), so a notebook that needs a
detector another notebook trained loads it instead of training it again, and a change of code retrains. Notebooks
may run side by side (the pipeline's lanes): a detector's or an attribute network's training run, a :func:`cached`
value and a written synthetic data set are computed under :func:`exclusive`, so the second notebook that asks waits
for the first and then reads its result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from fashion_lib.io import atomic_write
from fashion_lib.provenance import library_digest, runs_dir

# library_digest and runs_dir are provenance's, named here because the experiment modules take them with the source
# lists below
__all__ = ["runs_dir", "library_digest", "TRAINING_SOURCES", "DATA_SOURCES", "cached", "exclusive", "seeded_build",
           "MappedDataset", "spread_rows", "holdout_rows"]

log = logging.getLogger(__name__)

T = TypeVar("T")


# The sources a trained model depends on (the key of the run folders): a change in inference, refinement, scoring or
# reporting code reuses the trained models, a change here retrains them.
TRAINING_SOURCES = ("engine.py", "train_config.py", "checkpoints.py", "distributed.py", "io.py", "keypoints.py",
                    "attributes.py", "crops.py", "crop_sampling.py", "losses.py", "data", "synthetic",
                    "models/keypoint_rcnn.py", "models/cpn.py", "models/attributes.py")
# The sources a written synthetic data set depends on.
DATA_SOURCES = ("io.py", "keypoints.py", "attributes.py", "synthetic")


def spread_rows(total: int, n: int) -> list[int]:
    """``n`` row indices spread evenly over ``total`` rows (all of them when ``n >= total``).

    Real label files are grouped by category or task (FashionAI lists every blouse, then every dress, ...), so the
    first ``n`` rows would be one of them; evenly spread rows cover them all.
    """
    if n >= total:
        return list(range(total))
    return torch.linspace(0, total - 1, n).round().long().tolist()


def holdout_rows(total: int, n_val: int, *, where: str = "the training file") -> tuple[list[int], list[int]]:
    """Split ``total`` rows into disjoint (training, validation) row indices; ``n_val`` validation rows are spread
    evenly (:func:`spread_rows`), every other row trains. Deterministic: the same file gives the same split.

    The real FashionAI downloads ship labels for the training split only, so by default the study validates on
    rows held out of it. ``where`` names the file in the error raised when no row would be left to train on.
    """
    if total < 2:
        raise ValueError(f"{where} has {total} row(s): at least 2 are needed to hold some out for validation")
    val = spread_rows(total, min(n_val, total - 1))  # at least one row is left to train on
    taken = set(val)
    return [i for i in range(total) if i not in taken], val


@contextlib.contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock named after ``path`` (the hidden file ``.<name>.lock`` beside it) while the block runs.

    Two processes that would both compute ``path`` (two notebooks running side by side that need the same
    detector) take turns: the second blocks until the first is done, then finds the result and reads it. The lock
    is an advisory ``flock``, released by the kernel when its holder dies, so a crashed run never leaves it held.
    Where ``fcntl`` does not exist (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on the study's platforms
        yield
        return
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for %s: another process is computing it", path)
            started = time.monotonic()
            fcntl.flock(f, fcntl.LOCK_EX)
            log.info("%s: waited %.0f s for the other process", path, time.monotonic() - started)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached(path: str | os.PathLike, compute: Callable[[], T]) -> T:
    """``torch.load(path)`` if it exists, else ``compute()`` saved atomically to ``path`` (tensors, dicts, lists);
    computed once when two processes ask at the same time (:func:`exclusive`)."""
    path = Path(path)
    with exclusive(path):
        if path.is_file():
            try:
                return torch.load(path, weights_only=False)
            except (OSError, RuntimeError, EOFError) as err:  # a file cut short by a crash: compute it again
                log.warning("cache file %s is unreadable (%s); computing it again", path, err)
        value = compute()
        with atomic_write(path, "wb") as f:
            torch.save(value, f)
        return value


def seeded_build(build: Callable[[Any], T], config: Any, seed: int) -> T:
    """``build(config)`` with the global RNG seeded by ``seed`` (torchvision and timm initialise weights from it),
    inside :func:`torch.random.fork_rng`, so the caller's global RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(config)


class MappedDataset(torch.utils.data.Dataset):
    """Items of ``dataset`` passed through ``transform(image, target)``: adapts a loader to a model's input."""

    def __init__(self, dataset: Any, transform: Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        return self.transform(*self.dataset[index])
