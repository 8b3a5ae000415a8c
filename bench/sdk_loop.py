"""The baseline graphnap must beat: a plain sequential loop over Huawei's own SDK
(huaweicloudsdkges), as someone without graphnap would write it. Lists every graph, stops
each running one, then (unless --no-follow) asks each job's status until it has ended, a
second between looks at the same job. Prints one JSON line with its timings.

    .venv/bin/python bench/sdk_loop.py URL PROJECT_ID AK SK
"""

from __future__ import annotations

import argparse
import json
import time

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkges.v1 import (
    GesClient,
    ListGraphsRequest,
    ShowJobRequest,
    StopGraphRequest,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("project_id")
    parser.add_argument("ak")
    parser.add_argument("sk")
    parser.add_argument("--no-follow", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    config = HttpConfig.get_default_config()
    config.timeout = (5, 30)
    sdk = (
        GesClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(args.ak, args.sk, args.project_id))
        .with_endpoints([args.url])
        .build()
    )
    graphs = []
    while True:
        page = sdk.list_graphs(ListGraphsRequest(offset=len(graphs), limit=100))
        graphs += page.graphs
        if not page.graphs or len(graphs) >= page.graph_count:
            break
    jobs = [
        (g.id, sdk.stop_graph(StopGraphRequest(graph_id=g.id, action_id="stop")).job_id)
        for g in graphs
        if g.status == "200"
    ]
    issued = time.monotonic()
    failed = 0
    if not args.no_follow:
        for graph_id, job_id in jobs:
            while True:
                status = sdk.show_job(ShowJobRequest(graph_id=graph_id, job_id=job_id)).status
                if status in ("success", "failed"):
                    failed += status == "failed"
                    break
                time.sleep(1)
    done = time.monotonic()
    print(
        json.dumps(
            {
                "stops": len(jobs),
                "failed": failed,
                "issue_s": issued - started,
                "total_s": done - started,
            }
        )
    )


if __name__ == "__main__":
    main()
