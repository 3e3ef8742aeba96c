"""Datasets: the container and sampler every agent uses, loaders for OGBench / D4RL / Minari, generation.

Modules, lowest first (each imports only those above it, and :mod:`fidec.envs` for task names):

- ``errors`` (:class:`DatasetError`, :class:`DatasetNotFoundError`), ``paths`` (where files live),
  ``validate`` (array checks), ``npz`` (OGBench's file format), ``stacking`` (frame-stack indices);
- ``dataset`` (:class:`Dataset`: float32 transitions), ``visual`` (:class:`VisualDataset`: pixel
  transitions, frames stored once), ``sampling`` (:func:`sample_batch`, pure and jittable);
- ``frames`` (frames memory-mapped from an ``.npz``), ``relabel`` (OGBench's reward relabelling);
- ``ogbench_data``, ``d4rl`` (loaders), ``generate`` (OGBench's scripted oracles), ``load``
  (:func:`load_dataset`: task name or path -> (train, val)), ``download`` (opt-in official downloads),
  ``info`` (summaries), ``commands`` (``fidec data ...``).
"""

from fidec.data.dataset import BATCH_KEYS, CORE_KEYS, Dataset
from fidec.data.errors import DatasetError, DatasetNotFoundError
from fidec.data.load import load_dataset
from fidec.data.sampling import sample_batch
from fidec.data.visual import VisualDataset

__all__ = [
    "BATCH_KEYS",
    "CORE_KEYS",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "VisualDataset",
    "load_dataset",
    "sample_batch",
]
