"""`reco-sidecar evaluate`: every arm scored on the same held-out users, with paired CIs."""

from __future__ import annotations

import csv
import json
import pathlib
from collections import Counter

import numpy as np

from reco_sidecar import cli
from reco_sidecar.training import als, demo_data, interactions, pipeline
from tests.support.models import DEMO, PARAMS


def split_csv(path: pathlib.Path, train: pathlib.Path, held: pathlib.Path) -> int:
    """Every fifth interaction of each user with ≥ 5 goes to the held-out file."""
    header, *body = list(csv.reader(path.open()))
    counts = Counter(r[0] for r in body)
    position: Counter[str] = Counter()
    kept, held_rows = [header], [["user_id", "item_id"]]
    for r in body:
        position[r[0]] += 1
        if counts[r[0]] >= 5 and position[r[0]] % 5 == 0:
            held_rows.append(r[:2])
        else:
            kept.append(r)
    csv.writer(train.open("w", newline="")).writerows(kept)
    csv.writer(held.open("w", newline="")).writerows(held_rows)
    return len(held_rows) - 1


def test_evaluate_scores_every_arm_and_ranks_the_model_above_random(tmp_path: pathlib.Path) -> None:
    data_csv, _ = demo_data.write(DEMO, tmp_path / "all.csv")
    train_csv, held_csv = tmp_path / "train.csv", tmp_path / "held.csv"
    assert split_csv(data_csv, train_csv, held_csv) > 500
    data = interactions.read_csv(train_csv)
    root = tmp_path / "models"
    pipeline.train_als(data, root, "posts", PARAMS)
    pipeline.train_als(data, root, "posts", als.AlsParams(factors=4, iterations=2, regularization=0.05,
                                                          alpha=20.0, seed=5))
    experiments = tmp_path / "experiments.toml"
    experiments.write_text("""
[[experiments]]
name = "feed"
salt = "feed-1"
share = 1
arms = [
  { name = "control", model = "posts", version = 1 },
  { name = "small", model = "posts", version = 2 },
  { name = "popular", baseline = "popular" },
  { name = "random", baseline = "random" },
  { name = "shadow", model = "posts", version = 1, shadow = true },
]
""")
    out, png = tmp_path / "report.json", tmp_path / "report.png"
    code = cli.main(["evaluate", "--model-root", str(root), "--experiments", str(experiments),
                     "--experiment", "feed", "--held-out", str(held_csv), "--default-model", "posts",
                     "--bootstrap", "200", "--out", str(out), "--plot", str(png)])
    assert code == 0
    report = json.loads(out.read_text())
    arms = {a["arm"]: a for a in report["arms"]}
    assert list(arms) == ["control", "small", "popular", "random", "shadow"]
    assert report["control"] == "control" and report["users"] > 100
    assert arms["control"]["source"] == "posts@1" and arms["small"]["source"] == "posts@2"
    # A trained model beats random by far; the popular baseline is the most popularity-biased.
    assert arms["control"]["ndcg@10"] > 3 * arms["random"]["ndcg@10"]
    assert arms["popular"]["popularity_bias"] == max(a["popularity_bias"] for a in arms.values())
    assert arms["popular"]["coverage"] < arms["control"]["coverage"]
    for name in ("small", "popular", "random", "shadow"):
        for metric in ("ndcg@10", "recall@10"):
            diff = arms[name][f"{metric}_vs_control"]
            low, high = diff["ci95"]
            assert low <= diff["difference"] <= high
            assert np.isclose(diff["difference"], arms[name][metric] - arms["control"][metric])
    # The shadow arm is the control's model: identical lists, a zero difference with a zero-width CI.
    assert arms["shadow"]["ndcg@10_vs_control"] == {"difference": 0.0, "ci95": [0.0, 0.0]}
    low, high = arms["random"]["ndcg@10_vs_control"]["ci95"]
    assert high < 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_an_unknown_experiment(tmp_path: pathlib.Path, capsys: object) -> None:
    experiments = tmp_path / "e.toml"
    experiments.write_text("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m'}]\n")
    held = tmp_path / "held.csv"
    held.write_text("user_id,item_id\nu,i\n")
    code = cli.main(["evaluate", "--model-root", str(tmp_path), "--experiments", str(experiments),
                     "--experiment", "b", "--held-out", str(held), "--default-model", "m",
                     "--out", str(tmp_path / "r.json")])
    assert code != 0
    assert not (tmp_path / "r.json").exists()
