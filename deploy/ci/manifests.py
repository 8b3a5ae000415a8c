"""Split `helm template` output into what the other deploy checks consume.

    python deploy/ci/manifests.py RENDERED.yaml OUTDIR

writes OUTDIR/config.yaml (the ConfigMap's graphnap config, for `graphnap validate` and the
container run), OUTDIR/rules.yaml (the PrometheusRule as a plain rules file, for promtool and
Prometheus), OUTDIR/dashboard.json (from the dashboard ConfigMap) and OUTDIR/env.list (the
Deployment's literal container environment, for `docker run --env-file`). The shipped
artifacts are what gets checked, not their sources.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def split(rendered: Path, out: Path) -> list[str]:
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    (deployment,) = by_kind["Deployment"]
    config_name = next(
        v["configMap"]["name"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "configMap" in v
    )
    for cm in by_kind["ConfigMap"]:
        if cm["metadata"]["name"] == config_name:
            (out / "config.yaml").write_text(cm["data"]["config.yaml"])
            written.append("config.yaml")
        elif "graphnap.json" in cm.get("data", {}):
            json.loads(cm["data"]["graphnap.json"])  # must be JSON as shipped
            (out / "dashboard.json").write_text(cm["data"]["graphnap.json"])
            written.append("dashboard.json")

    for rule in by_kind.get("PrometheusRule", []):
        (out / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        written.append("rules.yaml")

    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = [f"{e['name']}={e['value']}" for e in container.get("env", []) if "value" in e]
    (out / "env.list").write_text("\n".join(env) + "\n")
    written.append("env.list")
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    written = split(Path(argv[0]), Path(argv[1]))
    print(f"{argv[1]}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
