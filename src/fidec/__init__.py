"""fidec: Fisher Decorator and flow-policy baselines for offline RL, in JAX.

Public API (small on purpose; everything else lives in its module):

- runs:     :func:`train`, :func:`load_run`, :func:`load_policy`, :class:`Policy`
- flows:    :func:`flow_matching_loss`, :func:`euler_sample`, :func:`score_from_velocity`, :func:`log_density`
- fisher:   :class:`FisherConfig`, :func:`fisher_metric`, :func:`quadratic_penalty`, :func:`isotropic_penalty`
- networks: :class:`NetworkConfig`

The package root is a lazy index: importing ``fidec`` (which Python does before any ``fidec.x``) imports
no fidec module and no JAX; each public name loads its module on first use (PEP 562), so
``import fidec.errors`` stays light while ``fidec.fisher_metric`` and ``fidec.load_policy`` still work.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it (loaded on first access).
EXPORTS: dict[str, str] = {
    "FisherConfig": "fidec.fisher",
    "fisher_metric": "fidec.fisher",
    "isotropic_penalty": "fidec.fisher",
    "quadratic_penalty": "fidec.fisher",
    "euler_sample": "fidec.flows",
    "flow_matching_loss": "fidec.flows",
    "log_density": "fidec.flows",
    "score_from_velocity": "fidec.flows",
    "NetworkConfig": "fidec.networks",
    "Policy": "fidec.training.api",
    "load_policy": "fidec.training.api",
    "load_run": "fidec.training.api",
    "train": "fidec.training.api",
}

if TYPE_CHECKING:  # what type checkers and editors see: the names of EXPORTS (tested)
    from fidec.fisher import FisherConfig, fisher_metric, isotropic_penalty, quadratic_penalty
    from fidec.flows import euler_sample, flow_matching_loss, log_density, score_from_velocity
    from fidec.networks import NetworkConfig
    from fidec.training.api import Policy, load_policy, load_run, train


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module in :data:`EXPORTS` on first access."""
    module = EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fidec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily loaded public ones included."""
    return sorted({*globals(), *EXPORTS})


__all__ = [  # the names of EXPORTS (tested)
    "FisherConfig",
    "NetworkConfig",
    "Policy",
    "__version__",
    "euler_sample",
    "fisher_metric",
    "flow_matching_loss",
    "isotropic_penalty",
    "load_policy",
    "load_run",
    "log_density",
    "quadratic_penalty",
    "score_from_velocity",
    "train",
]
