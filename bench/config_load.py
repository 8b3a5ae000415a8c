"""How long reading a config takes, and how little more a hostile one costs: the timing
that unit tests no longer assert (tests/test_yaml_reader.py proves the bounds by counting).

Every figure is a ratio to parsing config/example.yaml in the same run, since the machine
is shared and noisy; the absolute time of that one parse is printed for reference. Only
public tools: parse_config and read_yaml, and the hostile inputs of the tests.

    .venv/bin/python bench/config_load.py [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for the test suites' hostile inputs

from daemon.config.loader import parse_config  # noqa: E402
from daemon.config.problems import ConfigError  # noqa: E402
from daemon.config.yaml_reader import read_yaml  # noqa: E402
from tests.test_loader_fuzz import CASES, mutate  # noqa: E402
from tests.test_yaml_reader import billion_laughs, merge_bomb  # noqa: E402

EXAMPLE = (ROOT / "config" / "example.yaml").read_text()


HOSTILE = {
    "billion laughs, 10**9 values": billion_laughs(10, 10),
    "billion laughs, 10**40 values": billion_laughs(41, 10),
    "merge bomb, 10**11 values": merge_bomb(12, 10),
    "20,000 '[' deep": "projects: " + "[" * 20_000 + "]" * 20_000 + "\n",
    "2,000 '{a: ' deep": "projects: " + "{a: " * 2_000 + "1" + "}" * 2_000 + "\n",
    "60,000 values in one list": "projects: [" + ", ".join(["1"] * 60_000) + "]\n",
    "a 5,000-digit number": EXAMPLE.replace("threshold: 0", "threshold: 1" + "0" * 5000),
    "a NUL byte": EXAMPLE.replace("USD", "US\x00D"),
    "a file past 1 MiB": "# " + "x" * (1 << 20) + "\n",
}


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with contextlib.suppress(ConfigError):  # a refusal is the work being measured
            work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="runs per figure (median)")
    repeat = parser.parse_args().repeat

    base = median_seconds(lambda: parse_config(EXAMPLE, "example.yaml"), repeat)
    reader = median_seconds(lambda: read_yaml(EXAMPLE, "example.yaml"), repeat)
    print(f"parse config/example.yaml: {base * 1000:.2f} ms (the unit of every ratio)")
    print(f"  of which the YAML reader: {reader / base:.2f}x")
    print()
    print(f"{'hostile input, refused':<34} {'x example':>10}")
    for name, text in HOSTILE.items():
        ratio = median_seconds(lambda text=text: parse_config(text, "hostile.yaml"), repeat) / base
        print(f"{name:<34} {ratio:>10.2f}")
    print()
    texts = [mutate(seed) for seed in range(CASES)]
    seconds = []
    for text in texts:
        seconds.append(median_seconds(lambda text=text: parse_config(text, "fuzz.yaml"), 3))
    slowest = max(range(CASES), key=seconds.__getitem__)
    print(f"{CASES} seeded mutations of the example (tests/test_loader_fuzz.py):")
    print(f"  all of them: {sum(seconds) / base:.0f}x one parse of the example")
    print(f"  median case: {statistics.median(seconds) / base:.2f}x")
    print(f"  slowest case (seed {slowest}): {seconds[slowest] / base:.1f}x")


if __name__ == "__main__":
    main()
