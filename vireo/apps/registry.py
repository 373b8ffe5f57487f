"""Discover apps through the `vireo.apps` entry-point group, so third-party packages can add one."""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import entry_points

from vireo.apps.base import App

log = logging.getLogger(__name__)


class UnknownAppError(KeyError):
    def __init__(self, name: str, known: list[str]):
        self.name, self.known = name, known
        super().__init__(f"unknown app {name!r}; available apps: {', '.join(known)}")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


@lru_cache(maxsize=1)
def load_apps() -> dict[str, App]:
    """Instantiate every registered app once, keyed by its name."""
    apps: dict[str, App] = {}
    for ep in entry_points(group="vireo.apps"):
        try:
            cls = ep.load()
        except Exception:  # one broken plugin must not take the other apps down
            log.exception("could not load app plugin %s -> %s; skipping it", ep.name, ep.value)
            continue
        if not (isinstance(cls, type) and issubclass(cls, App)):
            log.error("app plugin %s -> %s is not a vireo App subclass; skipping it", ep.name, ep.value)
            continue
        apps[cls.name] = cls()
    return dict(sorted(apps.items()))


def get_app(name: str) -> App:
    apps = load_apps()
    if name not in apps:
        raise UnknownAppError(name, list(apps))
    return apps[name]
