"""The lab's Kubernetes API server: object store, routes, tables, OpenAPI, server-side apply, subresources."""
