"""fidec: Fisher Decorator and flow-policy baselines for offline RL, in JAX.

Public API (small on purpose; everything else lives in its module):

- flows:    :func:`flow_matching_loss`, :func:`euler_sample`, :func:`score_from_velocity`, :func:`log_density`
- fisher:   :class:`FisherConfig`, :func:`fisher_metric`, :func:`quadratic_penalty`, :func:`isotropic_penalty`
- networks: :class:`NetworkConfig`
"""

from fidec.fisher import FisherConfig, fisher_metric, isotropic_penalty, quadratic_penalty
from fidec.flows import euler_sample, flow_matching_loss, log_density, score_from_velocity
from fidec.networks import NetworkConfig

__version__ = "0.1.0"

__all__ = [
    "FisherConfig",
    "NetworkConfig",
    "__version__",
    "euler_sample",
    "fisher_metric",
    "flow_matching_loss",
    "isotropic_penalty",
    "log_density",
    "quadratic_penalty",
    "score_from_velocity",
]
