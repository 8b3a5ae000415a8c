"""What a GES id may look like: the one definition the config's models, its JSON Schema and
the cloud clients check against. Ids go into URL paths, so nothing but letters, digits and
'-' gets through (no '/', '..', '%').
"""

from __future__ import annotations

import re

PROJECT_ID_PATTERN = r"^[A-Za-z0-9]{1,64}$"
PROJECT_ID_RULE = "up to 64 letters and digits"
RESOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"  # graphs, jobs, backups
RESOURCE_ID_RULE = "letters, digits and '-'"

_PROJECT_ID_RE = re.compile(PROJECT_ID_PATTERN)
_RESOURCE_ID_RE = re.compile(RESOURCE_ID_PATTERN)


def is_project_id(value: str) -> bool:
    return _PROJECT_ID_RE.fullmatch(value) is not None


def is_resource_id(value: str) -> bool:
    return _RESOURCE_ID_RE.fullmatch(value) is not None
