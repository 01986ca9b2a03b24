"""Training: interactions in, a published model version out."""
