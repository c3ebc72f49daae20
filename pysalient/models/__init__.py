"""Model families; one sub-package per family (``pysalient.models.sparseinst``, ...).

Importing this package registers every family and its named entries with :mod:`.registry`.
"""

from pysalient.models.instancefcn import family as _instancefcn_family  # noqa: F401  (registration)
from pysalient.models.rdpnet import family as _rdpnet_family  # noqa: F401  (registration)
from pysalient.models.registry import (
    FamilySpec,
    ModelEntry,
    PublishedWeights,
    WeightsSpec,
    get_family,
    get_model_entry,
    list_families,
    list_models,
    register_family,
    register_model,
)
from pysalient.models.s4net import family as _s4net_family  # noqa: F401  (registration)
from pysalient.models.sparseinst import family as _sparseinst_family  # noqa: F401  (registration)
from pysalient.models.sprnet import family as _sprnet_family  # noqa: F401  (registration)

__all__ = [
    "FamilySpec",
    "ModelEntry",
    "PublishedWeights",
    "WeightsSpec",
    "get_family",
    "get_model_entry",
    "list_families",
    "list_models",
    "register_family",
    "register_model",
]
