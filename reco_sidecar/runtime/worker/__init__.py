"""One worker process (`process.py`): its gRPC server, its side of the control channel
(`control.py`: prepare, commit, abort), the experiments it serves (`experiments.py`), its
heartbeat (`heartbeat.py`) and what it knows of its siblings (`topology.py`)."""
