"""The evaluation metrics as a plain-text table, model beside baseline."""

from __future__ import annotations

from reco_sidecar.training.metrics import METRICS


def table(metrics: dict[str, float], k: int) -> str:
    rows = [(f"{name}@{k}", metrics.get(f"{name}_at_{k}"), metrics.get(f"baseline_{name}_at_{k}"))
            for name in METRICS]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  {'model':>8}  {'popularity':>10}"]
    for label, model, base in rows:
        lines.append(f"{label:<{width}}  {_num(model):>8}  {_num(base):>10}")
    users, held = metrics.get("eval_users"), metrics.get("eval_held_out_items")
    if users is not None and held is not None:
        lines.append(f"({int(users)} users, {int(held)} held-out items)")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
