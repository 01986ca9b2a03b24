"""For a host that starts or probes a sidecar from outside: read its ready line
(`readyline.py`), ask its health service (`healthcheck.py`). Imports nothing of the sidecar's
own layers: a host depends on this, not on the server."""
