"""The Helm chart, rendered by the real helm: what a cluster would be given."""

from __future__ import annotations

import json
import shutil
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    ALERTS,
    CHART,
    DASHBOARD,
    KUBE_VERSION,
    helm,
    kinds,
    one,
    render,
    run,
    tool,
)

PRODUCTION = CHART / "ci/production-values.yaml"
EMULATOR = CHART / "ci/emulator-values.yaml"
LEADER = CHART / "ci/leader-election-values.yaml"
BAD_VALUES = sorted((Path(__file__).parent / "bad-values").glob("*.yaml"))


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def env(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(docs).get("env", [])}


def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "values",
    [[], [PRODUCTION], [EMULATOR], [LEADER]],
    ids=["default", "production", "emulator", "leader-election"],
)
def test_lint_strict(values: list[Path]) -> None:
    args = ["lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
    for file in values:
        args += ["-f", str(file)]
    helm(*args)


def test_monitoring_objects_follow_the_api() -> None:
    without = render()
    assert kinds(without) == ["ConfigMap", "ConfigMap", "Deployment", "Service", "ServiceAccount"]
    assert kinds(render(api=True)) == [
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "PrometheusRule",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    forced = render(sets=["serviceMonitor.force=true", "prometheusRule.force=true"])
    assert {"ServiceMonitor", "PrometheusRule"} <= set(kinds(forced))
    off = render(api=True, sets=["serviceMonitor.enabled=false", "prometheusRule.enabled=false"])
    assert not {"ServiceMonitor", "PrometheusRule"} & set(kinds(off))


def test_one_hardened_pod_at_a_time() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod(docs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    sc = container(docs)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert isinstance(sc["runAsUser"], int)
    assert sc["runAsUser"] > 0
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = container(docs)["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_probes_and_drain() -> None:
    docs = render()
    c = container(docs)
    (port,) = c["ports"]
    assert port["name"] == "metrics"
    assert port["containerPort"] == 9464
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["args"] == ["run"]
    grace = float(env(docs)["GRAPHNAP_SHUTDOWN_GRACE_S"])
    assert pod(docs)["terminationGracePeriodSeconds"] > grace


def test_drain_bound_must_fit_the_grace_period() -> None:
    result = helm(
        "template",
        "gn",
        str(CHART),
        "--set",
        "settings.shutdownGraceS=60",
        "--set",
        "terminationGracePeriodSeconds=40",
        check=False,
    )
    assert result.returncode != 0
    assert "terminationGracePeriodSeconds" in result.stderr


def test_writable_paths_are_emptydirs() -> None:
    docs = render()
    mounts = {m["mountPath"]: m for m in container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(docs)["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in volumes[mounts["/var/lib/graphnap"]["name"]]
    assert env(docs)["GRAPHNAP_STATE_FILE"] == "/var/lib/graphnap/state.json"
    # The config is a directory mount (subPath mounts never see ConfigMap updates) and no
    # checksum annotation restarts the pod on an edit: hot reload applies it.
    config = mounts["/etc/graphnap"]
    assert config["readOnly"] is True
    assert "subPath" not in config
    assert "configMap" in volumes[config["name"]]
    assert env(docs)["GRAPHNAP_CONFIG"] == "/etc/graphnap/config.yaml"
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    assert not any("checksum" in key for key in annotations)
    no_state = render(sets=["state.enabled=false"])
    assert "GRAPHNAP_STATE_FILE" not in env(no_state)
    assert "/var/lib/graphnap" not in {m["mountPath"] for m in container(no_state)["volumeMounts"]}


def test_service_names_the_metrics_port() -> None:
    docs = render()
    service = one(docs, "Service")
    (port,) = service["spec"]["ports"]
    assert port == {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}
    template_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()


def test_config_is_structured_and_valid(tmp_path: Path) -> None:
    for values in (None, PRODUCTION, EMULATOR):
        docs = render(*([values] if values else []))
        config_map = one(docs, "ConfigMap", "graphnap")
        config = yaml.safe_load(config_map["data"]["config.yaml"])
        expected = yaml.safe_load((values or CHART / "values.yaml").read_text())["config"]
        assert config == expected
        path = tmp_path / "config.yaml"
        path.write_text(config_map["data"]["config.yaml"])
        result = run(sys.executable, "-m", "daemon", "validate", str(path))
        assert result.returncode == 0, f"{values}: {result.stderr}"


def test_credentials_are_files_from_a_secret() -> None:
    docs = render()  # none given: nothing mounted (NOTES warns)
    assert "GRAPHNAP_SECRETS_DIR" not in env(docs)
    assert "Secret" not in kinds(docs)

    docs = render(PRODUCTION)
    assert "Secret" not in kinds(docs)
    volume = next(v for v in pod(docs)["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == "graphnap-credentials"
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] is True
    assert env(docs)["GRAPHNAP_SECRETS_DIR"] == mount["mountPath"]
    assert not any("AK" in name or "SK" in name for name in env(docs))

    docs = render(EMULATOR)
    secret = one(docs, "Secret")
    assert sorted(secret["stringData"]) == ["demo.ak", "demo.sk"]
    volume = next(v for v in pod(docs)["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]


def test_service_monitor_selects_the_service() -> None:
    docs = render(PRODUCTION, api=True)
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= one(docs, "Service")["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["graphnap"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["interval"] == "60s"
    # job="graphnap" whatever the release is called: the alerts select on it.
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert one(docs, "Service")["metadata"]["labels"]["app.kubernetes.io/name"] == "graphnap"


def test_prometheus_rule_is_the_rules_file() -> None:
    plain = yaml.safe_load(ALERTS.read_text())["groups"]
    rule = one(render(api=True), "PrometheusRule")
    assert rule["spec"]["groups"] == plain
    # By default no link (graphnap has no public address): the runbook named as text only.
    for r in (r for g in rule["spec"]["groups"] for r in g["rules"]):
        assert "runbook_url" not in r["annotations"], r["alert"]
        assert r["annotations"]["runbook"] == f"deploy/runbooks.md#{r['alert'].lower()}"

    docs = render(
        PRODUCTION,
        api=True,
        sets=[
            "prometheusRule.disabledAlerts={GraphnapApiThrottled}",
            "prometheusRule.runbookBaseUrl=https://wiki.example.com/graphnap/runbooks/",
            "nameOverride=gnap",
        ],
    )
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert "GraphnapApiThrottled" not in names
    assert len(names) == sum(len(g["rules"]) for g in plain) - 1
    for r in rules:
        assert r["labels"]["team"] == "data-platform"
        assert r["labels"]["severity"] in {"critical", "warning", "info"}
        anchor = r["alert"].lower()
        # A trailing slash is not doubled into the link; the text annotation stays.
        assert r["annotations"]["runbook_url"] == (
            f"https://wiki.example.com/graphnap/runbooks#{anchor}"
        )
        assert r["annotations"]["runbook"] == f"deploy/runbooks.md#{anchor}"
        assert 'job="gnap"' in r["expr"]
        assert 'job="graphnap"' not in r["expr"]


def test_dashboard_config_map() -> None:
    docs = render(PRODUCTION)
    cm = one(docs, "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Platform"}
    assert json.loads(cm["data"]["graphnap.json"]) == json.loads(DASHBOARD.read_text())

    docs = render(
        sets=[
            "dashboard.label=dashboards",
            "dashboard.labelValue=graphnap",
            "dashboard.folder=Cost",
            "dashboard.folderAnnotation=k8s-sidecar-target-directory",
        ]
    )
    cm = one(docs, "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["dashboards"] == "graphnap"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "Cost"}
    off = render(sets=["dashboard.enabled=false"])
    assert not any(d["metadata"]["name"].endswith("-dashboard") for d in off)


def test_recommended_labels_everywhere() -> None:
    for doc in render(PRODUCTION, api=True):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "graphnap", doc["kind"]
        assert labels["app.kubernetes.io/instance"] == "gn"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["team"] == "data-platform"  # commonLabels


@pytest.mark.parametrize("bad", BAD_VALUES, ids=[p.stem for p in BAD_VALUES])
def test_schema_rejects_bad_values(bad: Path) -> None:
    result = helm("template", "gn", str(CHART), "-f", str(bad), check=False)
    assert result.returncode != 0, f"{bad.name} was accepted:\n{result.stdout[:500]}"
    assert "schema" in result.stderr.lower() or "values don't meet" in result.stderr


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of values.yaml down to the documented level (maps with defaults given
    as a whole, like resources or probes, are one value)."""
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in WHOLE_VALUES:
            paths += leaf_paths(value, path + ".")
        else:
            paths.append(path)
    return paths


WHOLE_VALUES = {
    "config",
    "resources",
    "podSecurityContext",
    "securityContext",
    "startupProbe",
    "livenessProbe",
    "readinessProbe",
}


def test_schema_and_readme_cover_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    for path in leaf_paths(values):
        node = schema
        for part in path.split("."):
            assert part in node.get("properties", {}), f"values.schema.json lacks {path}"
            node = node["properties"][part]
        assert node.get("description"), f"values.schema.json: {path} has no description"
        assert f"`{path}`" in readme, f"helm/graphnap/README.md does not list {path}"
        if path.split(".")[0] not in WHOLE_VALUES:  # the table's default is values.yaml's
            node = values
            for part in path.split("."):
                node = node[part]
            default = json.dumps(node, separators=(", ", ": "))
            assert f"| `{path}` | `{default}` |" in readme, (
                f"helm/graphnap/README.md: {path}'s default is not {default}"
            )
    assert schema.get("additionalProperties") is False


def test_notes_warn_about_missing_credentials(tmp_path: Path) -> None:
    """helm template does not render NOTES.txt: render it as a file through `tpl`."""
    chart = tmp_path / "graphnap"
    shutil.copytree(CHART, chart)
    (chart / "templates/NOTES.txt").rename(chart / "files/notes.txt")
    (chart / "templates/notes.yaml").write_text(
        'notes: {{ tpl (.Files.Get "files/notes.txt") . | toJson }}\n'
    )

    def notes(*sets: str) -> str:
        docs = render(chart=chart, sets=sets)
        return next(d["notes"] for d in docs if "notes" in d and "kind" not in d)

    assert "WARNING: no credentials" in notes()
    assert "WARNING" not in notes("credentials.existingSecret=graphnap-credentials")
    assert "DRY RUN" in notes("settings.dryRun=true", "credentials.existingSecret=x")


def test_every_variable_the_chart_sets_is_a_daemon_setting() -> None:
    """Settings ignore unknown GRAPHNAP_* variables: a renamed one would be lost silently."""
    from pydantic import BaseModel

    from daemon.config.settings import Settings

    names = set(env(render(EMULATOR))) | set(env(render(PRODUCTION))) | set(env(render()))
    names |= set(env(render(LEADER)))
    names.discard("POD_NAME")  # the identity's default (daemon.ops.leader.default_identity)
    for name in sorted(names):
        assert name.startswith("GRAPHNAP_"), name
        model: type[BaseModel] = Settings
        *parents, leaf = name.removeprefix("GRAPHNAP_").lower().split("__")
        keyed = False  # the part after a dict field is its key (GRAPHNAP_NOTIFY__<CHANNEL>__URL)
        for part in parents:
            if keyed:
                keyed = False
                continue
            annotation = model.model_fields[part].annotation
            if typing.get_origin(annotation) is dict:
                annotation, keyed = typing.get_args(annotation)[1], True
            assert isinstance(annotation, type), name
            assert issubclass(annotation, BaseModel), name
            model = annotation
        assert not keyed, f"{name} names a key but no field under it"
        assert leaf in model.model_fields, (
            f"{name} is not a field of daemon.config.settings.Settings"
        )


def test_config_schema_knows_every_top_level_key_of_the_daemon() -> None:
    """values.schema.json types `config` shallowly (graphnap validate checks the rest in CI):
    its keys must be the daemon's, or a valid config would be refused at install."""
    result = run(sys.executable, "-m", "daemon", "schema")
    assert result.returncode == 0, result.stderr
    daemon_schema = json.loads(result.stdout)
    chart_schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]
    assert set(chart_schema["properties"]) == set(daemon_schema["properties"])
    assert set(chart_schema["required"]) == set(daemon_schema["required"])


CONTROL = ["control.enabled=true", "control.tokensSecret=gn-tokens"]


def test_the_control_port_is_off_by_default() -> None:
    docs = render()
    assert [p["name"] for p in one(docs, "Service")["spec"]["ports"]] == ["metrics"]
    assert [p["name"] for p in container(docs)["ports"]] == ["metrics"]
    assert not any(k.startswith("GRAPHNAP_CONTROL_") for k in env(docs))
    assert "NetworkPolicy" not in kinds(docs)


def test_the_control_port_serves_tokens_from_the_secret_read_only() -> None:
    docs = render(sets=[*CONTROL, "control.burst=5"])
    ports = {p["name"]: p["port"] for p in one(docs, "Service")["spec"]["ports"]}
    assert ports == {"metrics": 9464, "control": 9465}
    values = env(docs)
    assert values["GRAPHNAP_CONTROL_TOKENS_DIR"] == "/var/run/secrets/graphnap-control"
    assert values["GRAPHNAP_CONTROL_PORT"] == "9465"
    assert values["GRAPHNAP_CONTROL_BURST"] == "5"
    assert "GRAPHNAP_CONTROL_RATE_PER_S" not in values
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == "control-tokens"]
    assert mount == {"name": "control-tokens", "mountPath": "/var/run/secrets/graphnap-control",
                     "readOnly": True}  # fmt: skip
    (volume,) = [v for v in pod(docs)["volumes"] if v["name"] == "control-tokens"]
    assert volume["secret"] == {"secretName": "gn-tokens", "defaultMode": 0o440}


def test_the_network_policy_opens_the_control_port_only_to_chosen_peers() -> None:
    peer = "control.networkPolicy.from[0].namespaceSelector.matchLabels.team=ci"
    docs = render(sets=[*CONTROL, "control.networkPolicy.enabled=true", peer])
    rules = one(docs, "NetworkPolicy")["spec"]["ingress"]
    assert rules[0] == {"ports": [{"port": "metrics", "protocol": "TCP"}]}
    assert rules[1]["ports"] == [{"port": "control", "protocol": "TCP"}]
    assert rules[1]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "ci"}}}]
    closed = render(sets=[*CONTROL, "control.networkPolicy.enabled=true"])
    assert len(one(closed, "NetworkPolicy")["spec"]["ingress"]) == 1  # no peer: none


# --- leader election (leaderElection.*, issue 17) -------------------------------------------

ELECTION = ["leaderElection.enabled=true", "replicaCount=2"]
LEADER_KINDS = {"Role", "RoleBinding", "PodDisruptionBudget"}


def env_from(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The fieldPath of each variable the downward API fills."""
    return {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container(docs)["env"]
        if "fieldRef" in e.get("valueFrom", {})
    }


def test_without_election_one_pod_no_api_access() -> None:
    docs = render()
    assert not LEADER_KINDS & set(kinds(docs))
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert not any(name.startswith("GRAPHNAP_LEADER__") for name in env(docs))
    assert "POD_NAME" not in env(docs)
    assert pod(docs)["automountServiceAccountToken"] is False
    assert not any("projected" in v for v in pod(docs)["volumes"])
    assert "affinity" not in pod(docs)


def test_two_replicas_are_refused_without_election() -> None:
    for sets in (["replicaCount=2"], ["replicaCount=2", "leaderElection.enabled=false"]):
        result = helm("template", "gn", str(CHART), *(f"--set={s}" for s in sets), check=False)
        assert result.returncode != 0, sets
        assert "replicaCount" in result.stderr
    assert one(render(sets=ELECTION), "Deployment")["spec"]["replicas"] == 2


def test_election_rolls_replicas_one_at_a_time_on_different_nodes() -> None:
    docs = render(sets=ELECTION)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (term,) = pod(docs)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    # One replica: a minAvailable 1 budget would only block node drains.
    single = render(sets=["leaderElection.enabled=true"])
    assert "PodDisruptionBudget" not in kinds(single)
    assert one(single, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    # The user's own affinity replaces the default one.
    own = render(sets=[*ELECTION, "affinity.nodeAffinity.x=y"])
    assert pod(own)["affinity"] == {"nodeAffinity": {"x": "y"}}
    no_pdb = render(sets=[*ELECTION, "leaderElection.podDisruptionBudget.enabled=false"])
    assert "PodDisruptionBudget" not in kinds(no_pdb)


def test_election_env_names_the_lease_the_state_and_the_pod() -> None:
    docs = render(sets=ELECTION)
    values = env(docs)
    assert values["GRAPHNAP_LEADER__ENABLED"] == "true"
    assert values["GRAPHNAP_LEADER__STORE"] == "configmap"
    assert values["GRAPHNAP_LEADER__LEASE_NAME"] == "gn-graphnap"
    assert values["GRAPHNAP_LEADER__CONFIGMAP_NAME"] == "gn-graphnap-state"
    assert env_from(docs) == {
        "GRAPHNAP_LEADER__NAMESPACE": "metadata.namespace",
        "POD_NAME": "metadata.name",
    }
    # The state lives in the ConfigMap: no state file, no emptyDir for it.
    assert "GRAPHNAP_STATE_FILE" not in values
    assert "/var/lib/graphnap" not in {m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert not any(k.endswith("_S") and k.startswith("GRAPHNAP_LEADER__") for k in values)
    timed = env(render(LEADER))
    assert timed["GRAPHNAP_LEADER__LEASE_DURATION_S"] == "20"
    assert timed["GRAPHNAP_LEADER__RENEW_DEADLINE_S"] == "12"
    assert timed["GRAPHNAP_LEADER__RETRY_PERIOD_S"] == "3"
    on_file = render(sets=[*ELECTION, "leaderElection.store=file"])
    assert env(on_file)["GRAPHNAP_LEADER__STORE"] == "file"
    assert "GRAPHNAP_LEADER__CONFIGMAP_NAME" not in env(on_file)
    assert env(on_file)["GRAPHNAP_STATE_FILE"] == "/var/lib/graphnap/state.json"


def test_the_api_token_is_mounted_for_election_only() -> None:
    docs = render(sets=ELECTION)
    spec = pod(docs)
    assert spec["automountServiceAccountToken"] is False  # no token in the default path
    (volume,) = [v for v in spec["volumes"] if "projected" in v]
    sources = volume["projected"]["sources"]
    token = next(s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s)
    assert token["expirationSeconds"] == 3600
    ca = next(s["configMap"] for s in sources if "configMap" in s)
    assert ca["name"] == "kube-root-ca.crt"
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    values = env(docs)
    assert values["GRAPHNAP_LEADER__TOKEN_FILE"] == f"{mount['mountPath']}/{token['path']}"
    (ca_path,) = [i["path"] for i in ca["items"]]
    assert values["GRAPHNAP_LEADER__CA_FILE"] == f"{mount['mountPath']}/{ca_path}"


def rbac_grants(docs: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, name or "*") for every rule of the chart's Role."""
    grants = set()
    for rule in one(docs, "Role")["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or ["*"]:
                        grants.add((group, resource, verb, name))
    return grants


@pytest.mark.parametrize(
    ("sets", "lease", "state"),
    [
        ([], "gn-graphnap", "gn-graphnap-state"),
        (
            ["leaderElection.leaseName=gn-lock", "leaderElection.configMapName=gn-kept"],
            "gn-lock",
            "gn-kept",
        ),
    ],
    ids=["default-names", "names-from-values"],
)
def test_the_role_names_exactly_the_lease_and_the_configmap(
    sets: list[str], lease: str, state: str
) -> None:
    docs = render(sets=[*ELECTION, *sets])
    assert rbac_grants(docs) == {
        ("coordination.k8s.io", "leases", "get", lease),
        ("coordination.k8s.io", "leases", "update", lease),
        ("coordination.k8s.io", "leases", "create", "*"),  # resourceNames cannot limit create
        ("", "configmaps", "get", state),
        ("", "configmaps", "update", state),
        ("", "configmaps", "create", "*"),
    }
    values = env(docs)
    assert (values["GRAPHNAP_LEADER__LEASE_NAME"], values["GRAPHNAP_LEADER__CONFIGMAP_NAME"]) == (
        lease,
        state,
    )
    # graphnap can never write its own config.
    assert one(docs, "ConfigMap", "graphnap")["metadata"]["name"] != state
    binding = one(docs, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": one(docs, "Role")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod(docs)["serviceAccountName"], "namespace": "graphnap"}
    ]
    # With the state in a file, only the Lease.
    on_file = render(sets=[*ELECTION, "leaderElection.store=file"])
    assert {g[1] for g in rbac_grants(on_file)} == {"leases"}


def test_election_manifests_validate_strictly(tmp_path: Path) -> None:
    validate = tool("kubernetes-validate", "GRAPHNAP_KUBERNETES_VALIDATE")
    for name, values in (("on", [LEADER]), ("off", [])):
        rendered = tmp_path / f"election-{name}.yaml"
        args = ["template", "gn", str(CHART), "--namespace", "graphnap"]
        args += ["--kube-version", KUBE_VERSION, "--api-versions", "monitoring.coreos.com/v1"]
        for file in values:
            args += ["-f", str(file)]
        rendered.write_text(helm(*args).stdout)
        result = run(validate, "-k", KUBE_VERSION, "--strict", "--quiet", str(rendered))
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
    assert set(kinds(render(LEADER))) >= LEADER_KINDS


def test_notes_say_who_leads(tmp_path: Path) -> None:
    chart = tmp_path / "graphnap"
    shutil.copytree(CHART, chart)
    (chart / "templates/NOTES.txt").rename(chart / "files/notes.txt")
    (chart / "templates/notes.yaml").write_text(
        'notes: {{ tpl (.Files.Get "files/notes.txt") . | toJson }}\n'
    )

    def notes(*sets: str) -> str:
        docs = render(chart=chart, sets=sets)
        return next(d["notes"] for d in docs if "notes" in d and "kind" not in d)

    assert "get lease gn-graphnap" in notes(*ELECTION)
    assert "LEADER" not in notes()
