"""Learning between retrains: feedback events, each user's history, and the exact solve of a
user's vector from them (the model side; the processes that carry events live in serving
and runtime)."""
