"""Errors the CLI maps to exit codes: bad input (2) versus internal failure (1)."""


class InputError(Exception):
    """The user's data, flags or files are at fault; the message names the record or flag."""


class DataError(InputError):
    """A benchmark record breaks the format; ``key`` names the record, ``field`` the field."""

    def __init__(self, key: str, field: str, reason: str) -> None:
        self.key, self.field, self.reason = key, field, reason
        super().__init__(f"record '{key}': {field}: {reason}")
