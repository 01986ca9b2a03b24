"""Reads what LibRecommender's `DataInfo.save` and `model.save(path, name)` write.

Embeddings come either in embed form (`{name}.npz`: user_embed / item_embed, last row the
mean used for unknown ids) or, for TensorFlow models saved in full, as raw variables
(`{name}_tf_variables.npz`), which are turned into the same serving form: user [u, 1],
item [i, b_i]. The `.pkl` files beside them are never opened: consumed items are rebuilt
from `interaction_data`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from reco_sidecar.librecommender import ids, safe_npz
from reco_sidecar.librecommender.errors import ImportRefused
from reco_sidecar.librecommender.imported import Imported

TF_USER = "embedding/user_embeds_var:0"
TF_ITEM = "embedding/item_embeds_var:0"
TF_ITEM_BIAS = "embedding/item_bias_var:0"


def _get(arrays: dict[str, np.ndarray], key: str, where: object) -> np.ndarray:
    if key not in arrays:
        raise ImportRefused(where, f"has no '{key}' array (found: {', '.join(sorted(arrays)) or 'none'})")
    return arrays[key]


def _embed_form(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    arrays = safe_npz.load(path)
    user, item = _get(arrays, "user_embed", path), _get(arrays, "item_embed", path)
    if user.ndim != 2 or item.ndim != 2 or len(user) < 2 or len(item) < 2:
        raise ImportRefused(path, f"user_embed {user.shape} and item_embed {item.shape} are not embeddings "
                            "with a trailing mean row")
    return user[:-1], item[:-1], user[-1], "embed"


def _tf_variables(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    # Optimizer slots (".../Adam:0", "beta1_power:0") are training state, not model.
    arrays = safe_npz.load(path, only=lambda name: name.startswith("embedding/") and name.count("/") == 1)
    unknown = sorted(set(arrays) - {TF_USER, TF_ITEM, TF_ITEM_BIAS})
    if unknown:
        raise ImportRefused(path, f"has variables this importer does not know how to score ({', '.join(unknown)}); "
                            "save the model with inference_only=True to get the embed form")
    user, item = _get(arrays, TF_USER, path), _get(arrays, TF_ITEM, path)
    if user.ndim != 2 or item.ndim != 2:
        raise ImportRefused(path, f"embeddings of shapes {user.shape} and {item.shape} are not matrices")
    if TF_ITEM_BIAS in arrays:
        bias = arrays[TF_ITEM_BIAS]
        if bias.shape != (len(item),):
            raise ImportRefused(path, f"item bias of shape {bias.shape} does not match {len(item)} items")
        # LibRecommender's own serving form: the constant 1 picks up the item's bias.
        user = np.hstack([user, np.ones((len(user), 1), dtype=user.dtype)])
        item = np.hstack([item, bias[:, None].astype(item.dtype)])
    return user, item, user.mean(axis=0, dtype=np.float64).astype(np.float32), "tf_variables"


def _hyper(path: pathlib.Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ImportRefused(path, f"not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ImportRefused(path, "is not a JSON object")
    return raw


def _consumed(interactions: np.ndarray, users: dict[str, int], items: dict[str, int],
              where: object) -> tuple[np.ndarray, np.ndarray]:
    if interactions.ndim != 2 or interactions.shape[1] < 2:
        raise ImportRefused(where, f"interaction_data of shape {interactions.shape} is not N x (user, item, ...)")
    raw_users = ids.as_strings(interactions[:, 0], where)
    raw_items = ids.as_strings(interactions[:, 1], where)
    u = np.fromiter((users.get(x, -1) for x in raw_users), dtype=np.int64, count=len(raw_users))
    i = np.fromiter((items.get(x, -1) for x in raw_items), dtype=np.int64, count=len(raw_items))
    if (u < 0).any() or (i < 0).any():
        raise ImportRefused(where, f"interaction_data names {int((u < 0).sum())} unknown users and "
                            f"{int((i < 0).sum())} unknown items")
    return u, i


def read(path: pathlib.Path, model_name: str) -> Imported:
    path = pathlib.Path(path)
    embed, tf_vars = path / f"{model_name}.npz", path / f"{model_name}_tf_variables.npz"
    if embed.exists():
        user, item, cold, form = _embed_form(embed)
    elif tf_vars.exists():
        user, item, cold, form = _tf_variables(tf_vars)
    else:
        raise ImportRefused(path, f"neither {embed.name} nor {tf_vars.name} is here: is --model-name right?")
    info_path = path / f"{model_name}_data_info.npz"
    info = safe_npz.load(info_path, only=lambda n: n in ("user_unique_vals", "item_unique_vals", "interaction_data"))
    user_ids = ids.as_strings(_get(info, "user_unique_vals", info_path), info_path)
    item_ids = ids.as_strings(_get(info, "item_unique_vals", info_path), info_path)
    seen_u, seen_i = _consumed(_get(info, "interaction_data", info_path),
                               ids.unique_index(user_ids, info_path, "user"),
                               ids.unique_index(item_ids, info_path, "item"), info_path)
    default = None
    recs_path = path / f"{model_name}_default_recs.npz"
    if recs_path.exists():
        default = _get(safe_npz.load(recs_path), "default_recs", recs_path)
        if default.ndim != 1 or default.dtype.kind not in "iu":
            raise ImportRefused(recs_path, "default_recs is not a list of item ids")
        default = default.astype(np.int64)
    hyper = _hyper(path / f"{model_name}_hyper_parameters.json")
    return Imported(
        user_ids=user_ids,
        item_ids=item_ids,
        user_vectors=np.asarray(user, dtype=np.float32),
        item_vectors=np.asarray(item, dtype=np.float32),
        cold_start_vector=np.asarray(cold, dtype=np.float32),
        seen_users=seen_u,
        seen_items=seen_i,
        algorithm=f"librecommender-{model_name.lower()}",
        default_items=default,
        hyper_parameters=hyper,
        source={"kind": "librecommender", "form": form, "path": str(path), "model_name": model_name,
                "embed_width": int(item.shape[1])},
    ).check(path)
