"""What the platform's services refuse, in their own words: domain errors, free of HTTP.

A service raises these; `vireo.platform.api.errors` maps each one to its HTTP answer in one place.
`detail` is what a person reads: a sentence, or a list of field errors ({"loc", "msg", "type"}).
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request a service refuses; `detail` is the message (or field errors) shown to the caller."""

    def __init__(self, detail: str | list[dict]):
        super().__init__(detail if isinstance(detail, str) else "; ".join(str(e.get("msg")) for e in detail))
        self.detail = detail


class UnknownApp(ServiceError):
    """The job names an app that is not installed."""


class InvalidInput(ServiceError):
    """The job's input does not fit the app (a field error, or a limit such as the context length)."""


class UnknownModel(ServiceError):
    """The request names a model this deployment does not serve."""
