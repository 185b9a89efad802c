"""Kubernetes' protobuf encoding of built-in kinds, read from the official schemas (request bodies only)."""
