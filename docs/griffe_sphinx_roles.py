"""Griffe extension for the API reference: render Sphinx roles as code.

afmio's docstrings name other objects the Sphinx way (:func:`open`, :class:`~a.B`), which
Markdown would show verbatim. This turns each role into a code span of the name as
Sphinx would print it (the last component when it starts with ``~``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|exc|data|obj):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    short, name = match.groups()
    return f"`{name.rsplit('.', 1)[-1] if short else name}`"


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in every docstring once the package is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_code, obj.docstring.value)
