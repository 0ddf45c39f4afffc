"""Text encoders: dense bi-encoder (CLS / mean pooling) and model resolution."""

from granite_index.encoders.dense import DenseEncoder, DenseEncoderConfig
from granite_index.encoders.resolve import DEFAULT_DENSE_MODEL, ModelSource, resolve_model

__all__ = [
    "DEFAULT_DENSE_MODEL",
    "DenseEncoder",
    "DenseEncoderConfig",
    "ModelSource",
    "resolve_model",
]
