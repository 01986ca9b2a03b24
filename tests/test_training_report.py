from reco_sidecar.training.report import table


def test_table_puts_model_beside_baseline_per_metric() -> None:
    metrics = {"precision_at_5": 0.5, "baseline_precision_at_5": 0.25, "recall_at_5": 0.125,
               "eval_users": 12.0, "eval_held_out_items": 30.0}
    lines = table(metrics, 5).splitlines()
    assert lines[0].split() == ["metric", "model", "popularity"]
    assert lines[1].split() == ["precision@5", "0.5000", "0.2500"]
    assert lines[2].split() == ["recall@5", "0.1250", "-"]
    assert lines[-1] == "(12 users, 30 held-out items)"
