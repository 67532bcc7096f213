"""The host's error taxonomy: what the CLI turns into one line `samband: ...`."""

import re


class SambandError(Exception):
    """A failure the user can act on; its message says what to do."""


class BuildError(SambandError):
    pass


class BoardError(SambandError, ValueError):
    pass


class HubError(SambandError):
    """The hub (real or virtual) did not do what was asked."""


class NoAnswer(HubError):
    """The hub stopped answering on its serial port (no REPL, a link gone): code that
    cleans up after a failure knows there is nobody left to tidy up on the hub."""


class HubRaised(HubError):
    """Code run on the hub raised. kind is the exception's class as the hub printed it
    ("ImportError", "OSError"), errno its number for an OSError that has one, else
    None: callers decide by these, never by the message text."""

    def __init__(self, line: str) -> None:
        super().__init__("hub raised: " + line)
        head, _, rest = line.partition(":")
        self.kind = head.strip() if head.strip().isidentifier() else None
        # MicroPython prints "OSError: [Errno 28] ENOSPC", or "OSError: 28" without errno names
        m = re.match(r"\s*(?:\[Errno (\d+)\]|(\d+)\s*$)", rest) if self.kind == "OSError" else None
        self.errno = int(m.group(1) or m.group(2)) if m else None
