"""Config intake: read a file, parse its YAML (yaml_reader), validate it against the models,
check its cross-references (references); every failure ends as one located ConfigError.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pydantic import ValidationError

from daemon.config.models import Config
from daemon.config.problems import ConfigError, Problem, line_of, problems_from_pydantic
from daemon.config.references import check_references
from daemon.config.yaml_reader import MAX_FILE_BYTES, read_yaml, too_large


def load_config(path: Path | str) -> Config:
    """Read, parse and check one config file; raise ConfigError naming every problem."""
    path = Path(path)
    source = str(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(path)
        if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
            raise _whole_file(source, "is not a regular file", "name the YAML file itself")
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _whole_file(
            source, "file not found", "check the path, or set GRAPHNAP_CONFIG"
        ) from None
    except IsADirectoryError:
        raise _whole_file(
            source, "is a directory, not a file", "name the YAML file itself"
        ) from None
    except OSError as exc:
        raise _whole_file(
            source, f"cannot be read: {exc.strerror or exc}", "check its permissions"
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(source, [too_large()])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _whole_file(
            source,
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            "save the file as UTF-8",
            raw[: exc.start].count(b"\n") + 1,
        ) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse and check a config's text; every failure, whatever its cause, is a ConfigError."""
    try:
        return _parse(text, source)
    except ConfigError:
        raise
    except Exception as exc:  # a bug here must still end as a config error, not a traceback
        raise _whole_file(
            source,
            f"could not be checked: {type(exc).__name__}",
            "this is a graphnap bug: please report it with the file",
        ) from exc


def _parse(text: str, source: str) -> Config:
    document = read_yaml(text, source)
    if document is None:
        raise _whole_file(source, "the file is empty", "start from config/example.yaml")
    if not isinstance(document.data, dict):
        raise _whole_file(
            source,
            f"the top level is a {type(document.data).__name__}, not a mapping",
            "start with 'projects:'",
            1,
        )
    try:
        config = Config.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(source, problems_from_pydantic(exc, document.lines, Config)) from None
    problems = [replace(p, line=line_of(p.loc, document.lines)) for p in check_references(config)]
    if problems:
        raise ConfigError(source, problems)
    return config


def _whole_file(source: str, message: str, hint: str, line: int | None = None) -> ConfigError:
    return ConfigError(source, [Problem((), message, hint, line)])
