"""Errors the CLI maps to exit codes: bad input (2) versus internal failure (1)."""


class InputError(Exception):
    """The user's data, flags or files are at fault; the message names the record or flag."""


class DataError(InputError):
    """A benchmark record breaks the format; ``key`` names the record, ``field`` the field."""

    def __init__(self, key: str, field: str, reason: str) -> None:
        self.key, self.field, self.reason = key, field, reason
        super().__init__(f"record '{key}': {field}: {reason}")


class AdapterError(Exception):
    """A model could not be set up or used; the message tells the user what to do.

    Defined here, beside the other errors the CLI maps to exit code 2, so that the CLI catches it without
    importing the model adapters; ``mmeval.model_adapters`` exports it as its own."""
