"""The host's error taxonomy: what the CLI turns into one line `samband: ...`."""


class SambandError(Exception):
    """A failure the user can act on; its message says what to do."""


class BuildError(SambandError):
    pass


class BoardError(SambandError, ValueError):
    pass


class HubError(SambandError):
    """The hub (real or virtual) did not do what was asked."""
