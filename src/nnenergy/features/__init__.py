"""Layer descriptions -> numeric feature vectors, one extractor per layer kind."""

from nnenergy.features.layer_features import (  # noqa: F401
    KIND_FEATURES,
    LAYER_KINDS,
    kind_of,
    layer_features,
)
