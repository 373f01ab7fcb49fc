"""Neural-network building blocks: the ConvSC-attention encoder and the SSL heads."""

from specflow.models.convsc import ConvSCEncoder, load_reference_encoder
from specflow.models.heads import (
    ExternalVariableHead,
    InterRelationHead,
    IntraRelationHead,
    LinearClassifier,
    ProjectionHead,
)

__all__ = [
    "ConvSCEncoder",
    "ExternalVariableHead",
    "InterRelationHead",
    "IntraRelationHead",
    "LinearClassifier",
    "ProjectionHead",
    "load_reference_encoder",
]
