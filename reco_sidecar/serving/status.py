"""GetModelStatus's per-model fields and ListExperiments' listing, from domain state."""

from __future__ import annotations

from reco_sidecar.experiments.live import Snapshot
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.manager.manager import ModelManager, VersionState

STATE_PB = {
    VersionState.LOADING: reco_pb2.MODEL_STATE_LOADING,
    VersionState.AVAILABLE: reco_pb2.MODEL_STATE_AVAILABLE,
    VersionState.UNLOADING: reco_pb2.MODEL_STATE_UNLOADING,
    VersionState.FAILED: reco_pb2.MODEL_STATE_FAILED,
    VersionState.END: reco_pb2.MODEL_STATE_END,
}


def fill(resp: reco_pb2.GetModelStatusResponse | reco_pb2.ModelStatus, manager: ModelManager) -> None:
    """The same fields on the response (its model) and on each entry of `models`."""
    resp.model = manager.name
    resp.versions.extend(reco_pb2.ModelVersionStatus(version=s.version, state=STATE_PB[s.state], error=s.error)
                         for s in manager.statuses())
    model = manager.current
    if model is None:
        return
    resp.version = model.version
    resp.state = reco_pb2.MODEL_STATE_AVAILABLE
    resp.user_count = len(model.users)
    resp.item_count = len(model.items)
    resp.factors = model.factors
    resp.algorithm = model.info.algorithm
    resp.loaded_at = model.loaded_at
    resp.load_seconds = model.load_seconds
    resp.path = str(model.path)
    resp.has_item_metadata = model.catalog is not None
    resp.metrics.update(model.info.metrics)


def experiments(resp: reco_pb2.ListExperimentsResponse, snap: Snapshot) -> None:
    resp.generation = snap.generation
    for e in snap.experiments.experiments:
        out = resp.experiments.add(name=e.name, salt=e.salt, share=e.share)
        total = sum(a.weight for a in e.served_arms)
        for a in e.arms:
            c = snap.counts.get((e.name, a.name))
            arm = out.arms.add(name=a.name, model=a.model or "", baseline=a.baseline or "", shadow=a.shadow,
                               weight=a.weight, traffic_share=0.0 if a.shadow else e.share * a.weight / total)
            if c is None:
                continue
            arm.requests, arm.overrides = c.requests, c.overrides
            arm.shadow_scored, arm.shadow_dropped = c.shadow_scored, c.shadow_dropped
            if c.shadow_scored:
                arm.mean_overlap = c.overlap_sum / c.shadow_scored
            if c.rank_correlation_count:
                arm.mean_rank_correlation = c.rank_correlation_sum / c.rank_correlation_count
