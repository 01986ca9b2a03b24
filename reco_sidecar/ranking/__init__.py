"""The ranking stage after exact retrieval: reasons, diversity, caps, freshness and editorial rules."""
