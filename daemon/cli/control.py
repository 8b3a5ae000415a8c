"""`graphnap hold / holds / release / wake`: the control API's command line.

Plain HTTP to the control listener (through `kubectl port-forward`, localhost), the token from
GRAPHNAP_CONTROL_TOKEN or --token-file. Exit codes say what happened, for pipelines.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `graphnap --help` must stay light
    import httpx

EXIT_OK = 0
EXIT_FAILED = 1  # the server failed, the start job failed, or it did not finish in time
EXIT_USAGE = 2  # bad arguments, no token
EXIT_REFUSED = 3  # 401 / 403: the token is wrong, or the graph is outside its scope
EXIT_REJECTED = 4  # another 4xx: bad input, too many requests, a config hold
EXIT_UNREACHABLE = 5  # no control API answered at --server

CONTROL_PORT = 9465  # GRAPHNAP_CONTROL_PORT's default (tests/test_control_cli.py keeps them equal)
DEFAULT_SERVER = f"http://127.0.0.1:{CONTROL_PORT}"
TOKEN_ENV = "GRAPHNAP_CONTROL_TOKEN"  # noqa: S105 - the variable's name, not a token
CLOCK_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
LONG_POLL_S = 30.0


class Failure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise Failure(
                EXIT_USAGE, f"cannot read --token-file {args.token_file}: {exc}"
            ) from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise Failure(EXIT_USAGE, f"no token: set {TOKEN_ENV} or give --token-file FILE")
    return token


def _graph(text: str) -> tuple[str, str]:
    project, sep, graph = text.partition("/")
    if not sep or not project or not graph or "/" in graph:
        raise Failure(EXIT_USAGE, f"GRAPH is PROJECT/NAME or PROJECT/ID, not {text!r}")
    return project, graph


def _until(text: str, now: datetime) -> datetime:
    """ISO 8601 (a time without offset is this machine's local time), or HH:MM: the next."""
    clock = CLOCK_TIME.fullmatch(text.strip())
    if clock:
        hour, minute = int(clock[1]), int(clock[2])
        if hour > 23 or minute > 59:
            raise Failure(EXIT_USAGE, f"--until {text}: not a time of day")
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Failure(
            EXIT_USAGE, f"--until {text}: give HH:MM or an ISO 8601 time (2026-11-28T23:00+08:00)"
        ) from None
    return at if at.tzinfo else at.astimezone()


def _duration(text: str, flag: str) -> str:
    from daemon.config.models import parse_duration

    try:
        parse_duration(text)
    except ValueError as exc:
        raise Failure(EXIT_USAGE, f"{flag} {text}: {exc}") from None
    return text


class Api:
    def __init__(self, args: argparse.Namespace) -> None:
        import httpx

        self._http: httpx.Client = httpx.Client(
            base_url=args.server.rstrip("/"),
            headers={"Authorization": f"Bearer {_token(args)}"},
            timeout=httpx.Timeout(10.0, read=LONG_POLL_S + 15),
            trust_env=False,  # a port-forward is localhost: never through an HTTP proxy
        )
        self._server = args.server

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise Failure(
                EXIT_UNREACHABLE,
                f"no control API at {self._server} ({type(exc).__name__}); is it on (token "
                "files given), and is the port-forward running?",
            ) from None
        if response.is_success:
            return response.json()
        try:
            message = str(response.json()["error"])
        except (ValueError, KeyError, TypeError):
            message = response.text[:200] or response.reason_phrase
        if response.status_code in (401, 403):
            raise Failure(EXIT_REFUSED, f"refused ({response.status_code}): {message}")
        if response.status_code < 500:
            raise Failure(EXIT_REJECTED, f"rejected ({response.status_code}): {message}")
        raise Failure(EXIT_FAILED, f"the server failed ({response.status_code}): {message}")


def _when(text: str) -> str:
    at = datetime.fromisoformat(text)
    stamp = at.strftime("%Y-%m-%d %H:%M %z")
    return f"{stamp[:-2]}:{stamp[-2:]}"


def _hold_line(hold: dict[str, Any]) -> str:
    return (
        f"{hold['id']}  {hold['project']}/{hold['graph']}  keep {hold['keep']} until "
        f"{_when(hold['until'])}  by {hold['by']}: {hold['reason']}"
    )


def _print(args: argparse.Namespace, answer: Any, line: str) -> None:
    print(json.dumps(answer, indent=2) if args.json else line)


def cmd_hold(args: argparse.Namespace) -> int:
    project, graph = _graph(args.graph)
    body: dict[str, Any] = {"project": project, "graph": graph, "keep": args.keep}
    body["reason"] = args.reason
    if args.until:
        body["until"] = _until(args.until, datetime.now().astimezone()).isoformat()
    else:
        body["for"] = _duration(args.for_, "--for")
    with Api(args) as api:
        answer = api.call("POST", "/api/v1/holds", body)
    _print(args, answer, "held: " + _hold_line(answer["hold"]))
    return EXIT_OK


def cmd_holds(args: argparse.Namespace) -> int:
    with Api(args) as api:
        answer = api.call("GET", "/api/v1/holds")
    lines = [_hold_line(h) for h in answer["holds"]] or ["no holds"]
    _print(args, answer, "\n".join(lines))
    return EXIT_OK


def cmd_release(args: argparse.Namespace) -> int:
    with Api(args) as api:
        answer = api.call("DELETE", f"/api/v1/holds/{args.id}")
    hold = answer["hold"]
    _print(
        args,
        answer,
        f"released {hold['id']}: {hold['project']}/{hold['graph']} is back under its rules",
    )
    return EXIT_OK


def cmd_wake(args: argparse.Namespace) -> int:
    from daemon.config.models import parse_duration

    project, graph = _graph(args.graph)
    body = {"project": project, "graph": graph, "for": _duration(args.for_, "--for")}
    deadline = (
        time.monotonic() + parse_duration(_duration(args.timeout, "--timeout")).total_seconds()
    )
    with Api(args) as api:
        wake = api.call("POST", "/api/v1/wakes", body)["wake"]
        if not args.json:
            print(
                f"wake {wake['id']}: {wake['project']}/{wake['name']} {wake['state']}; held "
                f"running until {_when(wake['hold']['until'])} ({wake['hold']['id']})"
            )
        while args.wait and wake["state"] == "starting":
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(EXIT_FAILED, f"{project}/{graph} still starting after {args.timeout}")
            wait_s = min(LONG_POLL_S, max(left, 0.0))
            wake = api.call("GET", f"/api/v1/wakes/{wake['id']}?wait_s={wait_s:.1f}")["wake"]
    if args.json:
        print(json.dumps({"wake": wake}, indent=2))
    elif args.wait:
        print(
            f"{project}/{graph} {wake['state']}"
            + (f": {wake['message']}" if wake["message"] else "")
        )
    return EXIT_FAILED if wake["state"] == "failed" else EXIT_OK


def add_parsers(subparsers: Any) -> None:
    """Add hold, holds, release and wake to the `graphnap` command's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"control API URL (default {DEFAULT_SERVER})"
    )
    common.add_argument(
        "--token-file", metavar="FILE", help=f"file holding the token (default: ${TOKEN_ENV})"
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    graph_help = "PROJECT/NAME or PROJECT/ID (hold: NAME may be a glob, e.g. 'analytics/dev-*')"

    p = subparsers.add_parser(
        "hold", parents=[common], help="keep a graph running (or stopped) for a while"
    )
    p.add_argument("graph", metavar="GRAPH", help=graph_help)
    span = p.add_mutually_exclusive_group(required=True)
    span.add_argument("--for", dest="for_", metavar="DURATION", help="for this long: 3h, 90m")
    span.add_argument("--until", metavar="TIME", help="until HH:MM (next) or an ISO 8601 time")
    p.add_argument("--reason", required=True, help="why: shown in logs, status and the page")
    p.add_argument("--keep", choices=("running", "stopped"), default="running")
    p.set_defaults(func=_guarded(cmd_hold))

    p = subparsers.add_parser("holds", parents=[common], help="list the holds this token may see")
    p.set_defaults(func=_guarded(cmd_holds))

    p = subparsers.add_parser(
        "release", parents=[common], help="release a hold made through the API"
    )
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=_guarded(cmd_release))

    p = subparsers.add_parser(
        "wake", parents=[common], help="start a graph now and hold it running"
    )
    p.add_argument("graph", metavar="GRAPH", help="PROJECT/NAME or PROJECT/ID")
    p.add_argument(
        "--for",
        dest="for_",
        metavar="DURATION",
        default="2h",
        help="hold it running this long (2h)",
    )
    p.add_argument(
        "--wait", action="store_true", help="return when it runs; exit 1 if its start fails"
    )
    p.add_argument("--timeout", default="30m", help="how long --wait waits (30m)")
    p.set_defaults(func=_guarded(cmd_wake))


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The command, its failures printed and turned into exit codes."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except Failure as failure:
            print(f"graphnap: {failure.message}", file=sys.stderr)
            return failure.code

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """These commands alone (tests, and until cli/main.py wires add_parsers in)."""
    parser = argparse.ArgumentParser(prog="graphnap")
    add_parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args))
