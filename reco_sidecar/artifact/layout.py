"""File names and manifest keys of an artifact version directory (see docs/model-format.md)."""

from __future__ import annotations

# 2 added seen_weights.npy and the manifest's event_types, objective and as_of (all optional,
# so a version-1 directory is read as before; docs/model-format.md says what is then assumed).
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MANIFEST = "manifest.json"
USER_FACTORS = "user_factors.npy"
ITEM_FACTORS = "item_factors.npy"
USER_IDS = "user_ids.msgpack"
ITEM_IDS = "item_ids.msgpack"
SEEN_INDPTR = "seen_indptr.npy"
SEEN_INDICES = "seen_indices.npy"
ITEM_POPULARITY = "item_popularity.npy"
ANN_INDEX = "items.annoy"
# Optional files.
ITEM_METADATA = "item_metadata.msgpack"
COLD_START_VECTOR = "cold_start_vector.npy"
DEFAULT_ITEMS = "default_items.npy"
# Each seen pair's training value, aligned with seen_indices (float32).
SEEN_WEIGHTS = "seen_weights.npy"
# Exact cosine neighbours of every item (rows and similarities), nearest first.
ITEM_NEIGHBOURS = "item_neighbours.npy"
ITEM_NEIGHBOUR_SCORES = "item_neighbour_scores.npy"
# The scoring kernel's norm order (engine.scoring.NormOrder), derived from item_factors by the
# writer so that every worker maps one shared copy instead of building a private one.
ITEMS_BY_NORM = "items_by_norm.npy"
ITEM_NORM_ORDER = "item_norm_order.npy"
ITEM_NORMS = "item_norms.npy"
NORM_ORDER_FILES = (ITEMS_BY_NORM, ITEM_NORM_ORDER, ITEM_NORMS)

# Derived from the id maps by the writer (artifact/idmaps.py): byte spans and sorted hashes.
USER_ID_FILES = ("user_id_spans.npy", "user_id_hashes.npy", "user_id_hash_rows.npy")
ITEM_ID_FILES = ("item_id_spans.npy", "item_id_hashes.npy", "item_id_hash_rows.npy")

REQUIRED_FILES = (
    USER_FACTORS,
    ITEM_FACTORS,
    USER_IDS,
    ITEM_IDS,
    SEEN_INDPTR,
    SEEN_INDICES,
    ITEM_POPULARITY,
    ANN_INDEX,
)
OPTIONAL_FILES = (ITEM_METADATA, SEEN_WEIGHTS, COLD_START_VECTOR, DEFAULT_ITEMS, ITEM_NEIGHBOURS, ITEM_NEIGHBOUR_SCORES,
                  *NORM_ORDER_FILES, *USER_ID_FILES, *ITEM_ID_FILES)
# Optional files that are written, and must be listed, together.
GROUPS = (NORM_ORDER_FILES, USER_ID_FILES, ITEM_ID_FILES)
# Directories being written carry this prefix until the atomic rename; sources never list them.
TMP_PREFIX = ".tmp-"
