"""Alert URLs: where alerts go, in apprise's URL syntax (``tgram://BOT_TOKEN/CHAT_ID``, ``mailtos://USER:PASS@HOST``,
``json://HOST:PORT/PATH`` and about a hundred more), from the file's ``[alerts] urls`` and the environment
variable ``urls_env`` names.

A URL may hold a secret (a bot token, a password), so no URL is ever shown or logged: a problem names where the
URL is (``alerts.urls[1]``, ``MT5_COPIER_ALERT_URLS[0]``) and the scheme it starts with, and that is how the
sender names each URL in the log too (``AlertURL.name``). Only the shape is checked when the file is loaded:
importing apprise and its services takes about half a second, which every worker (they load the same file)
would pay at every start. Whether apprise accepts each URL is checked by ``check-config`` and at the start of
``run`` (``apprise_problems``): a URL it refuses is a configuration error there (exit 2).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import ConfigProblem

_URL_SHAPE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://\S+")


def url_shape_problem(url: str) -> str | None:
    """Why ``url`` cannot be an apprise URL at all (checked at every load, without apprise); None when it may be."""
    if _URL_SHAPE.fullmatch(url.strip()) is None:
        return ("must be a notification URL as apprise writes them, SCHEME://... (tgram://BOT_TOKEN/CHAT_ID, "
                "mailtos://USER:PASSWORD@HOST, json://HOST:PORT/PATH); the value is not shown: it may hold a secret")
    return None


URLS_ENV_HINT = (
    "the NAME of an environment variable holding more alert URLs ([A-Za-z_][A-Za-z0-9_]*), not the URLs "
    "themselves (the value is not shown)"
)


@dataclass(frozen=True)
class AlertURL:
    """One place alerts go. ``url`` is never shown: ``name`` says which one it is."""

    where: str  # "alerts.urls[0]", or "MT5_COPIER_ALERT_URLS[1]" for one from the environment
    url: str = field(repr=False)

    @property
    def scheme(self) -> str:
        match = _URL_SHAPE.fullmatch(self.url.strip())
        return match[1].lower() if match else "?"

    @property
    def name(self) -> str:
        """How the log names it: where it is and its scheme, never its secrets."""
        return f"{self.where} ({self.scheme}://)"


def alert_urls(urls: Sequence[str], urls_env: str | None,
               environ: Mapping[str, str] = os.environ) -> tuple[list[AlertURL], list[ConfigProblem]]:
    """Every alert URL: the file's, then those of the variable ``urls_env`` (separated by spaces or commas, as
    apprise's own command line reads its variable). A variable named but unset or empty is a problem: the person
    who named it expects alerts."""
    found = [AlertURL(f"alerts.urls[{index}]", url.strip()) for index, url in enumerate(urls)]
    problems: list[ConfigProblem] = []
    if urls_env is None:
        return found, problems
    value = environ.get(urls_env, "").strip()
    if not value:
        problems.append(ConfigProblem(
            "alerts.urls_env", f"names the environment variable {urls_env}, which is not set (or empty) here: set it "
                               "to the alert URLs, separated by spaces, in the environment the coordinator runs in "
                               "(a service's own environment), or remove urls_env"))
        return found, problems
    for index, url in enumerate(_split_urls(value)):
        where = f"{urls_env}[{index}]"
        problem = url_shape_problem(url)
        if problem is not None:
            problems.append(ConfigProblem(where, f"(a URL of alerts.urls_env) {problem}"))
        else:
            found.append(AlertURL(where, url))
    return found, problems


def _split_urls(value: str) -> list[str]:
    # A comma inside a URL (mailtos://...?to=a@x.com,b@y.com) belongs to it: only a comma before a new SCHEME:// or
    # whitespace separates two URLs, which is how apprise splits its own APPRISE_URLS.
    return [url for url in re.split(r"[\s]+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)", value) if url]


def apprise_problems(urls: Sequence[AlertURL]) -> list[ConfigProblem]:
    """The URLs apprise does not accept (an unknown scheme, or parts its service needs missing or malformed)."""
    from apprise import Apprise

    quiet_apprise()
    return [ConfigProblem(url.where, f"apprise does not accept this {url.scheme}:// URL: check it against apprise's "
                                     "page for that service (the value is not shown: it may hold a secret)")
            for url in urls if Apprise.instantiate(url.url) is None]


def quiet_apprise() -> None:
    """Keep apprise's own log records away from every handler: they quote URLs in full, secrets and all
    ("Unparseable URL ..."). What a person needs to know the copier says itself, naming URLs by ``AlertURL.name``."""
    apprise_logger = logging.getLogger("apprise")
    apprise_logger.setLevel(logging.CRITICAL + 1)
    apprise_logger.propagate = False
