"""The error the lab's Talos API answers with, shared by the model, its HTTP endpoint and the
``talosctl`` shim (which imports this small module, not the model, to start fast)."""

from __future__ import annotations


class TalosAPIError(Exception):
    """An error the Talos API would return: a gRPC code and the status message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def grpc(self) -> str:
        """The text talosctl prints for it (``rpc error: code = X desc = ...``)."""
        return f"rpc error: code = {self.code} desc = {self.message}"
