"""Datasets: the container and sampler every agent uses, loaders for OGBench / D4RL / Minari, generation.

- :class:`Dataset`, :func:`sample_batch` (``fidec.data.dataset``): float32 transitions and the pure,
  jittable uniform sampler whose only state is the PRNG key.
- :func:`load_dataset` (``fidec.data.load``): task name or path -> (train, val).
- ``fidec.data.generate``: OGBench manipulation datasets from OGBench's scripted oracles.
- ``fidec.data.d4rl``: D4RL ``.hdf5`` / Minari loaders and D4RL normalised scores.
- :class:`VisualDataset` (``fidec.data.visual``): pixel transitions, frames stored once, stacked on device.
- ``fidec.data.validate``: the checks and :class:`DatasetError`; ``fidec.data.paths``: where files live.
"""

from fidec.data.dataset import BATCH_KEYS, CORE_KEYS, Dataset, sample_batch
from fidec.data.load import load_dataset
from fidec.data.ogbench_data import DatasetNotFoundError
from fidec.data.validate import DatasetError
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
