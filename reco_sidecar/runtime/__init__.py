"""The processes: a supervisor (`supervisor/`) that forks and watches a pool of workers
(`worker/`), a verifier helper and, with a model store, a follower process
(`store_follower.py`). Every message between two of them is a typed value in `wire.py`,
carried by `channel.py`; nothing else crosses a process boundary."""
