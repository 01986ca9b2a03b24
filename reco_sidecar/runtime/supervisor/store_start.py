"""Starting `serve --model-store`: the follower process first, then the version to serve
first: the store's target once it is in the cache, else (store unreachable, download
failed) the newest cached version that verifies, so a replica restarts even while the
store is down."""

from __future__ import annotations

from reco_sidecar.artifact import loader, source
from reco_sidecar.common import logs
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.runtime.supervisor.store_bridge import FollowerConfig, StoreLink
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)


def start(s: ServeSettings) -> tuple[StoreLink, int]:
    """The running follower and the verified first version; raises ArtifactError (and stops
    the follower) when there is nothing to serve."""
    assert s.model_store is not None
    (s.model_root / s.default_model).mkdir(parents=True, exist_ok=True)
    link = StoreLink(FollowerConfig(s.model_store, s.default_model, s.model_root, s.store_keep, s.watch,
                                    s.s3_endpoint_url, s.log_level, s.log_format))
    link.start()
    try:
        first = link.wait_initial()
        reason = first.get("message", "")
        if first.get("type") == "available":
            version = int(first["version"])
            try:
                loader.verify(source.version_dir(s.model_root, s.default_model, version))
                return link, version
            except ArtifactError as e:
                reason = str(e)
        log.warning("store_initial_failed", error=reason)
        return link, _newest_cached(s, reason)
    except BaseException:
        link.close()
        raise


def _newest_cached(s: ServeSettings, store_reason: str) -> int:
    model_dir = s.model_root / s.default_model
    for version in reversed(source.list_versions(model_dir)):
        try:
            loader.verify(model_dir / str(version))
        except ArtifactError as e:
            log.warning("version_skipped", version=version, error=str(e))
            continue
        log.warning("store_serving_cached", version=version)
        return version
    raise ArtifactError(model_dir, f"nothing to serve: the store gave no version ({store_reason}) and the cache "
                        "holds no valid one")
