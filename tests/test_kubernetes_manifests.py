"""deploy/kubernetes/: every manifest passes the Kubernetes schemas (offline, strict: unknown
keys are errors), the validator refuses broken ones, and the pieces agree with each other."""

from __future__ import annotations

import pathlib
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.37"


def load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    assert len(docs) == 1 and isinstance(docs[0], dict), f"{name}: one resource per file"
    resource: dict[str, Any] = docs[0]
    return resource


def validate(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    first: dict[str, Any] = containers[0]
    return first


@pytest.mark.parametrize("name", sorted(p.name for p in DEPLOY.glob("*.yaml")))
def test_manifest_passes_the_schema(name: str) -> None:
    resource = load(name)
    try:
        validate(resource)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{name} does not pass the Kubernetes {KUBERNETES_VERSION} schema: {e}")
    assert resource["metadata"]["name"], f"{name}: a resource without a name"


def test_every_expected_manifest_exists() -> None:
    kinds = {load(p.name)["kind"] for p in DEPLOY.glob("*.yaml")}
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= kinds


def test_a_string_container_port_is_rejected() -> None:
    broken = load("deployment.yaml")
    container(broken)["ports"][0]["containerPort"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError, match="'x' is not of type 'integer'"):
        validate(broken)


def test_a_misspelled_key_is_rejected() -> None:
    broken = load("deployment.yaml")
    c = container(broken)
    c["readinesProbe"] = c.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate(broken)


def test_a_grpc_probe_without_port_is_rejected() -> None:
    broken = load("deployment.yaml")
    del container(broken)["livenessProbe"]["grpc"]["port"]
    with pytest.raises(kubernetes_validate.ValidationError, match="port"):
        validate(broken)


def test_probes_are_native_grpc_on_the_serving_port() -> None:
    c = container(load("deployment.yaml"))
    env = {e["name"]: e.get("value") for e in c["env"]}
    port = int(env["RECO_PORT"])
    assert port in {p["containerPort"] for p in c["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert set(c[probe]) & {"exec", "httpGet", "tcpSocket"} == set(), probe
        assert c[probe]["grpc"]["port"] == port, probe
    # Readiness asks for the Recommender service itself, which turns NOT_SERVING at drain.
    assert c["readinessProbe"]["grpc"]["service"] == "reco.v1.Recommender"


def test_service_is_headless_and_selects_the_pods() -> None:
    deployment, service = load("deployment.yaml"), load("service.yaml")
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in container(deployment)["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names


def test_disruption_budget_selects_the_pods_and_leaves_some_serving() -> None:
    deployment, pdb = load("deployment.yaml"), load("poddisruptionbudget.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]


def test_termination_grace_outlasts_the_drain() -> None:
    deployment = load("deployment.yaml")
    c = container(deployment)
    env = {e["name"]: e.get("value") for e in c["env"]}
    pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > int(env["RECO_GRACE"]) + pause


def test_model_store_is_configured_by_environment() -> None:
    c = container(load("deployment.yaml"))
    env = {e["name"]: e for e in c["env"]}
    assert env["RECO_MODEL_STORE"]["value"].startswith("s3://")
    assert "RECO_MODEL" in env
    # Credentials come from a Secret through the standard AWS variables, never inline.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    cache = env["RECO_MODEL_ROOT"]["value"]
    assert cache in {m["mountPath"] for m in c["volumeMounts"]}


def test_every_reco_variable_of_the_deployment_is_a_serve_option_with_a_valid_value() -> None:
    """A misspelled variable would be silently ignored by the pod; a bad value would crash-loop it."""
    import argparse

    from reco_sidecar import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {"RECO_" + a.dest.upper(): a for a in sub.choices["serve"]._actions if a.option_strings}
    env = container(load("deployment.yaml"))["env"]
    names = [e["name"] for e in env if e["name"].startswith("RECO_")]
    assert names and set(names) <= set(options), set(names) - set(options)
    for e in env:
        if e["name"] in options and "value" in e:
            convert = options[e["name"]].type
            if callable(convert):
                convert(e["value"])  # raises on a value serve would refuse
    from reco_sidecar.store import location

    location.parse(next(e["value"] for e in env if e["name"] == "RECO_MODEL_STORE"))
