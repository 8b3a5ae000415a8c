"""graphnap: stops idle Huawei Cloud GES graphs on schedules and idle rules."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("graphnap")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
