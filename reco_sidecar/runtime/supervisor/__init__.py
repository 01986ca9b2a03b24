"""The pre-fork master: its loop (`loop.py`) routes events to one reload transaction per
model (`model_reload.py`) and to the experiments rollout (`experiments_rollout.py`) and
carries out what they return. It owns the processes (`pool.py`), the verifier helper
(`verifier.py`), the bridge to the store follower (`store_bridge.py`, `store_start.py`) and
the port checks (`ports.py`)."""
