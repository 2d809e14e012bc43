"""The one error type of export."""


class ExportError(RuntimeError):
    """The run cannot be exported, or the exported graph does not act like the model."""
