"""`reco-sidecar evaluate --rules`: arms of one model ranked with their own rule sets, and the
diversity measures reported beside accuracy, each with a confidence interval."""

from __future__ import annotations

import json
import pathlib

from reco_sidecar import cli
from reco_sidecar.training import demo_data, interactions, items, pipeline
from tests.support.models import DEMO, PARAMS
from tests.test_experiments_evaluate import split_csv


def test_evaluate_reports_the_cost_of_a_creator_cap_per_arm(tmp_path: pathlib.Path) -> None:
    data_csv, items_csv = demo_data.write(DEMO, tmp_path / "all.csv")
    train_csv, held_csv = tmp_path / "train.csv", tmp_path / "held.csv"
    split_csv(data_csv, train_csv, held_csv)
    data = interactions.read_csv(train_csv)
    root = tmp_path / "models"
    pipeline.train_als(data, root, "posts", PARAMS, item_metadata=items.read(items_csv, data.item_ids))
    experiments, rules = tmp_path / "experiments.toml", tmp_path / "rules.toml"
    experiments.write_text("""
[[experiments]]
name = "feed"
salt = "feed-1"
share = 1
arms = [{ name = "control", model = "posts" }, { name = "capped", model = "posts" }]
""")
    rules.write_text("""
[[rules]]
model = "posts"
experiment = "feed"
arm = "capped"
[rules.diversity]
cap_field = "creator"
cap = 2
mmr_lambda = 0.3
""")
    out = tmp_path / "report.json"
    assert cli.main(["evaluate", "--model-root", str(root), "--experiments", str(experiments), "--experiment",
                     "feed", "--held-out", str(held_csv), "--default-model", "posts", "--bootstrap", "200",
                     "--rules", str(rules), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    control, capped = report["arms"]
    assert (control["arm"], capped["arm"]) == ("control", "capped")
    # No capped list gives a creator more than 2 of 10; the plain ranking often does.
    assert capped["largest_creator_share"] <= 0.2 and capped["largest_creator_share_ci95"][1] <= 0.2
    assert control["largest_creator_share"] > 0.25
    assert capped["intra_list_diversity"] > control["intra_list_diversity"]
    for arm in (control, capped):
        for metric in ("ndcg@10", "recall@10", "intra_list_diversity", "largest_creator_share", "novelty"):
            low, high = arm[f"{metric}_ci95"]
            assert low <= arm[metric] <= high
    for metric in ("ndcg@10", "recall@10", "intra_list_diversity", "largest_creator_share", "novelty"):
        diff = capped[f"{metric}_vs_control"]
        assert diff["ci95"][0] <= diff["difference"] <= diff["ci95"][1]
    assert capped["largest_creator_share_vs_control"]["ci95"][1] < 0
