"""deploy/spark/: the SparkApplication runs a command our own parser accepts, under an account
the other (core) manifests define and bind, and they pass the Kubernetes schemas offline."""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

import kubernetes_validate
import pytest
import yaml

from reco_sidecar.commands import train, train_spark
from reco_sidecar.common.errors import InvalidArgument

DEPLOY = pathlib.Path(__file__).resolve().parents[1] / "deploy" / "spark"


def load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    assert len(docs) == 1
    resource: dict[str, Any] = docs[0]
    return resource


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reco-sidecar")
    train.add_parser(p.add_subparsers(dest="command"))
    return p


@pytest.mark.parametrize("name", ["service-account.yaml", "role.yaml", "role-binding.yaml"])
def test_core_resources_pass_the_schema(name: str) -> None:
    try:
        kubernetes_validate.validate(load(name), "1.37", strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{name}: {e}")


def test_the_spark_application_runs_a_train_command_our_parser_accepts() -> None:
    app = load("spark-application.yaml")
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2" and app["kind"] == "SparkApplication"
    spec = app["spec"]
    assert spec["type"] == "Python" and spec["mode"] == "cluster"
    assert spec["mainApplicationFile"].endswith("/reco_sidecar/__main__.py")
    args = parser().parse_args([str(a) for a in spec["arguments"]])
    assert args.command == "train" and args.engine == "spark"
    # No master in the arguments: the one spark-submit was given (the cluster's) is used.
    assert args.spark_master is None
    train_spark.check(args)
    assert args.model_store.startswith("s3://") and args.promote


def test_the_driver_runs_as_the_bound_account() -> None:
    app, binding, role = load("spark-application.yaml"), load("role-binding.yaml"), load("role.yaml")
    account = app["spec"]["driver"]["serviceAccount"]
    assert binding["subjects"][0]["name"] == account == load("service-account.yaml")["metadata"]["name"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    pods = [r for r in role["rules"] if "pods" in r["resources"]]
    assert pods and {"create", "delete", "watch"} <= set(pods[0]["verbs"])
    namespaces = {load(n)["metadata"]["namespace"] for n in ("spark-application.yaml", "service-account.yaml",
                                                              "role.yaml", "role-binding.yaml")}
    assert namespaces == {"uro"}


def test_a_bpr_run_on_spark_is_refused_before_any_work() -> None:
    args = parser().parse_args(["train", "--engine", "spark", "--algorithm", "bpr", "--interactions", "x.csv",
                                "--model-root", "r", "--name", "n"])
    with pytest.raises(InvalidArgument, match="ALS only"):
        train_spark.check(args)


def test_a_java_that_spark_cannot_run_is_refused_with_what_to_install(tmp_path: pathlib.Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from reco_sidecar.common.errors import FailedPrecondition
    from reco_sidecar.training.spark import java

    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(FailedPrecondition, match=r"Spark needs Java 17 or 21; .* is Java 11"):
        java.check()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(FailedPrecondition, match="no `java` was found"):
        java.check()
    assert java.major_version('java version "1.8.0_392"') == 8
