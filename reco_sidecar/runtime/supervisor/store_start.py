"""Starting `serve --model-store`: the follower process first, then the version to serve
first: the store's target once it is in the cache, else (store unreachable, download
failed) the newest cached version that verifies, so a replica restarts even while the
store is down."""

from __future__ import annotations

from reco_sidecar.artifact import loader, version_dirs
from reco_sidecar.common import logs
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.supervisor.store_bridge import FollowerConfig, StoreBridge
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)


def start(s: ServeSettings) -> tuple[StoreBridge, int]:
    """The running follower and the verified first version; raises ArtifactError (and stops
    the follower) when there is nothing to serve."""
    assert s.model_store is not None
    (s.model_root / s.default_model).mkdir(parents=True, exist_ok=True)
    bridge = StoreBridge(FollowerConfig(s.model_store, s.default_model, s.model_root, s.store_keep, s.watch,
                                    s.s3_endpoint_url, s.log_level, s.log_format))
    bridge.start()
    try:
        first = bridge.wait_initial()
        reason = first.message if isinstance(first, wire.NotAvailable) else ""
        if isinstance(first, wire.Available):
            version = first.version
            try:
                loader.verify(version_dirs.version_dir(s.model_root, s.default_model, version))
                return bridge, version
            except ArtifactError as e:
                reason = str(e)
        log.warning("store_initial_failed", error=reason)
        return bridge, _newest_cached(s, reason)
    except BaseException:
        bridge.close()
        raise


def _newest_cached(s: ServeSettings, store_reason: str) -> int:
    model_dir = s.model_root / s.default_model
    for version in reversed(version_dirs.list_versions(model_dir)):
        try:
            loader.verify(model_dir / str(version))
        except ArtifactError as e:
            log.warning("version_skipped", version=version, error=str(e))
            continue
        log.warning("store_serving_cached", version=version)
        return version
    raise ArtifactError(model_dir, f"nothing to serve: the store gave no version ({store_reason}) and the cache "
                        "holds no valid one")
