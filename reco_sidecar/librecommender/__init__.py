"""Imports models trained and saved by LibRecommender into our artifact format, without
running any of its pickles."""
