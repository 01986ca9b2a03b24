"""reco-sidecar: a gRPC recommendation-serving sidecar."""

__version__ = "0.1.0"
