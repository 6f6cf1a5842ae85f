# isort: skip_file
"""Ray Tune, imported after hqray.cluster has set Ray's loopback switch.

Every tune module takes ``tune`` from here: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
when it is first imported, and hqray.cluster sets it (see its module docstring).
"""

import hqray.cluster  # noqa: F401  (must run before ray is imported)
from ray import tune

__all__ = ["tune"]
