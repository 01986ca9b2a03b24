from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_MODEL: _ClassVar[Source]
    SOURCE_FOLD_IN: _ClassVar[Source]
    SOURCE_POPULAR: _ClassVar[Source]
    SOURCE_ANN: _ClassVar[Source]
    SOURCE_RANDOM: _ClassVar[Source]
    SOURCE_ONLINE: _ClassVar[Source]
    SOURCE_ONLINE_NEW_USER: _ClassVar[Source]

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_LOADING: _ClassVar[ModelState]
    MODEL_STATE_AVAILABLE: _ClassVar[ModelState]
    MODEL_STATE_UNLOADING: _ClassVar[ModelState]
    MODEL_STATE_FAILED: _ClassVar[ModelState]
    MODEL_STATE_END: _ClassVar[ModelState]
SOURCE_UNSPECIFIED: Source
SOURCE_MODEL: Source
SOURCE_FOLD_IN: Source
SOURCE_POPULAR: Source
SOURCE_ANN: Source
SOURCE_RANDOM: Source
SOURCE_ONLINE: Source
SOURCE_ONLINE_NEW_USER: Source
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_LOADING: ModelState
MODEL_STATE_AVAILABLE: ModelState
MODEL_STATE_UNLOADING: ModelState
MODEL_STATE_FAILED: ModelState
MODEL_STATE_END: ModelState

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score", "rank", "reasons", "pinned")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    rank: int
    reasons: _containers.RepeatedCompositeFieldContainer[RankingReason]
    pinned: bool
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., reasons: _Optional[_Iterable[_Union[RankingReason, _Mapping]]] = ..., pinned: _Optional[bool] = ...) -> None: ...

class RankingReason(_message.Message):
    __slots__ = ("item_id", "contribution", "share")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    contribution: float
    share: float
    def __init__(self, item_id: _Optional[str] = ..., contribution: _Optional[float] = ..., share: _Optional[float] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("exclude_item_ids", "candidate_item_ids", "categories", "tags", "include_seen")
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SEEN_FIELD_NUMBER: _ClassVar[int]
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    candidate_item_ids: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    include_seen: bool
    def __init__(self, exclude_item_ids: _Optional[_Iterable[str]] = ..., candidate_item_ids: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., include_seen: _Optional[bool] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("model", "user_id", "n", "offset", "filter", "recent_item_ids", "disable_fallback", "experiment", "arm", "omit_jsonld", "explain")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RECENT_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    DISABLE_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    OMIT_JSONLD_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    model: str
    user_id: str
    n: int
    offset: int
    filter: Filter
    recent_item_ids: _containers.RepeatedScalarFieldContainer[str]
    disable_fallback: bool
    experiment: str
    arm: str
    omit_jsonld: bool
    explain: int
    def __init__(self, model: _Optional[str] = ..., user_id: _Optional[str] = ..., n: _Optional[int] = ..., offset: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., recent_item_ids: _Optional[_Iterable[str]] = ..., disable_fallback: _Optional[bool] = ..., experiment: _Optional[str] = ..., arm: _Optional[str] = ..., omit_jsonld: _Optional[bool] = ..., explain: _Optional[int] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("model", "version", "user_id", "items", "source", "jsonld", "experiment", "arm")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    JSONLD_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    user_id: str
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    source: Source
    jsonld: str
    experiment: str
    arm: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., user_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., source: _Optional[_Union[Source, str]] = ..., jsonld: _Optional[str] = ..., experiment: _Optional[str] = ..., arm: _Optional[str] = ...) -> None: ...

class SimilarRequest(_message.Message):
    __slots__ = ("model", "item_id", "n", "offset", "filter", "omit_jsonld")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    OMIT_JSONLD_FIELD_NUMBER: _ClassVar[int]
    model: str
    item_id: str
    n: int
    offset: int
    filter: Filter
    omit_jsonld: bool
    def __init__(self, model: _Optional[str] = ..., item_id: _Optional[str] = ..., n: _Optional[int] = ..., offset: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., omit_jsonld: _Optional[bool] = ...) -> None: ...

class SimilarResponse(_message.Message):
    __slots__ = ("model", "version", "item_id", "items", "source", "jsonld")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    JSONLD_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    item_id: str
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    source: Source
    jsonld: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., item_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., source: _Optional[_Union[Source, str]] = ..., jsonld: _Optional[str] = ...) -> None: ...

class BatchRecommendRequest(_message.Message):
    __slots__ = ("model", "user_ids", "n", "filter", "disable_fallback", "include_jsonld", "users_per_message", "explain")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DISABLE_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_JSONLD_FIELD_NUMBER: _ClassVar[int]
    USERS_PER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    model: str
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    n: int
    filter: Filter
    disable_fallback: bool
    include_jsonld: bool
    users_per_message: int
    explain: int
    def __init__(self, model: _Optional[str] = ..., user_ids: _Optional[_Iterable[str]] = ..., n: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., disable_fallback: _Optional[bool] = ..., include_jsonld: _Optional[bool] = ..., users_per_message: _Optional[int] = ..., explain: _Optional[int] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class BatchRecommendResponse(_message.Message):
    __slots__ = ("model", "version", "user_id", "index", "items", "source", "jsonld", "error", "users", "experiment", "arm")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    JSONLD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    user_id: str
    index: int
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    source: Source
    jsonld: str
    error: ItemError
    users: _containers.RepeatedCompositeFieldContainer[BatchUserResult]
    experiment: str
    arm: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., user_id: _Optional[str] = ..., index: _Optional[int] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., source: _Optional[_Union[Source, str]] = ..., jsonld: _Optional[str] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ..., users: _Optional[_Iterable[_Union[BatchUserResult, _Mapping]]] = ..., experiment: _Optional[str] = ..., arm: _Optional[str] = ...) -> None: ...

class BatchUserResult(_message.Message):
    __slots__ = ("user_id", "index", "items", "source", "jsonld", "error", "experiment", "arm", "model", "version")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    JSONLD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    index: int
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    source: Source
    jsonld: str
    error: ItemError
    experiment: str
    arm: str
    model: str
    version: int
    def __init__(self, user_id: _Optional[str] = ..., index: _Optional[int] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., source: _Optional[_Union[Source, str]] = ..., jsonld: _Optional[str] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ..., experiment: _Optional[str] = ..., arm: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("model", "old_version", "new_version", "load_seconds", "workers")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OLD_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEW_VERSION_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    old_version: int
    new_version: int
    load_seconds: float
    workers: int
    def __init__(self, model: _Optional[str] = ..., old_version: _Optional[int] = ..., new_version: _Optional[int] = ..., load_seconds: _Optional[float] = ..., workers: _Optional[int] = ...) -> None: ...

class GetModelStatusRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ModelVersionStatus(_message.Message):
    __slots__ = ("version", "state", "error")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: ModelState
    error: str
    def __init__(self, version: _Optional[int] = ..., state: _Optional[_Union[ModelState, str]] = ..., error: _Optional[str] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("pid", "address")
    PID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    address: str
    def __init__(self, pid: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class GetModelStatusResponse(_message.Message):
    __slots__ = ("model", "version", "state", "user_count", "item_count", "factors", "algorithm", "loaded_at", "load_seconds", "path", "versions", "worker", "workers", "shared_address", "has_item_metadata", "metrics", "store", "models", "default_model")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    USER_COUNT_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    SHARED_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HAS_ITEM_METADATA_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    state: ModelState
    user_count: int
    item_count: int
    factors: int
    algorithm: str
    loaded_at: float
    load_seconds: float
    path: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionStatus]
    worker: WorkerInfo
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    shared_address: str
    has_item_metadata: bool
    metrics: _containers.ScalarMap[str, float]
    store: StoreStatus
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    default_model: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[_Union[ModelState, str]] = ..., user_count: _Optional[int] = ..., item_count: _Optional[int] = ..., factors: _Optional[int] = ..., algorithm: _Optional[str] = ..., loaded_at: _Optional[float] = ..., load_seconds: _Optional[float] = ..., path: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersionStatus, _Mapping]]] = ..., worker: _Optional[_Union[WorkerInfo, _Mapping]] = ..., workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ..., shared_address: _Optional[str] = ..., has_item_metadata: _Optional[bool] = ..., metrics: _Optional[_Mapping[str, float]] = ..., store: _Optional[_Union[StoreStatus, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("model", "version", "state", "user_count", "item_count", "factors", "algorithm", "loaded_at", "load_seconds", "path", "versions", "has_item_metadata", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    USER_COUNT_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    HAS_ITEM_METADATA_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    state: ModelState
    user_count: int
    item_count: int
    factors: int
    algorithm: str
    loaded_at: float
    load_seconds: float
    path: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionStatus]
    has_item_metadata: bool
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[_Union[ModelState, str]] = ..., user_count: _Optional[int] = ..., item_count: _Optional[int] = ..., factors: _Optional[int] = ..., algorithm: _Optional[str] = ..., loaded_at: _Optional[float] = ..., load_seconds: _Optional[float] = ..., path: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersionStatus, _Mapping]]] = ..., has_item_metadata: _Optional[bool] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExperimentArm(_message.Message):
    __slots__ = ("name", "model", "baseline", "shadow", "weight", "traffic_share", "requests", "overrides", "shadow_scored", "shadow_dropped", "mean_overlap", "mean_rank_correlation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_SHARE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    SHADOW_SCORED_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DROPPED_FIELD_NUMBER: _ClassVar[int]
    MEAN_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MEAN_RANK_CORRELATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    baseline: str
    shadow: bool
    weight: float
    traffic_share: float
    requests: int
    overrides: int
    shadow_scored: int
    shadow_dropped: int
    mean_overlap: float
    mean_rank_correlation: float
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., baseline: _Optional[str] = ..., shadow: _Optional[bool] = ..., weight: _Optional[float] = ..., traffic_share: _Optional[float] = ..., requests: _Optional[int] = ..., overrides: _Optional[int] = ..., shadow_scored: _Optional[int] = ..., shadow_dropped: _Optional[int] = ..., mean_overlap: _Optional[float] = ..., mean_rank_correlation: _Optional[float] = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("name", "salt", "share", "arms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    salt: str
    share: float
    arms: _containers.RepeatedCompositeFieldContainer[ExperimentArm]
    def __init__(self, name: _Optional[str] = ..., salt: _Optional[str] = ..., share: _Optional[float] = ..., arms: _Optional[_Iterable[_Union[ExperimentArm, _Mapping]]] = ...) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments", "generation", "worker")
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[Experiment]
    generation: int
    worker: WorkerInfo
    def __init__(self, experiments: _Optional[_Iterable[_Union[Experiment, _Mapping]]] = ..., generation: _Optional[int] = ..., worker: _Optional[_Union[WorkerInfo, _Mapping]] = ...) -> None: ...

class ReloadExperimentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadExperimentsResponse(_message.Message):
    __slots__ = ("generation", "experiments", "workers")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    generation: int
    experiments: int
    workers: int
    def __init__(self, generation: _Optional[int] = ..., experiments: _Optional[int] = ..., workers: _Optional[int] = ...) -> None: ...

class RankingReloadRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RankingReloadRulesResponse(_message.Message):
    __slots__ = ("generation", "rule_sets", "workers")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    RULE_SETS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    generation: int
    rule_sets: int
    workers: int
    def __init__(self, generation: _Optional[int] = ..., rule_sets: _Optional[int] = ..., workers: _Optional[int] = ...) -> None: ...

class StoreStatus(_message.Message):
    __slots__ = ("uri", "target_version", "downloading_version", "downloaded_bytes", "download_total_bytes", "cached_versions", "failed_version", "error", "checked_at")
    URI_FIELD_NUMBER: _ClassVar[int]
    TARGET_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADING_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    uri: str
    target_version: int
    downloading_version: int
    downloaded_bytes: int
    download_total_bytes: int
    cached_versions: _containers.RepeatedScalarFieldContainer[int]
    failed_version: int
    error: str
    checked_at: float
    def __init__(self, uri: _Optional[str] = ..., target_version: _Optional[int] = ..., downloading_version: _Optional[int] = ..., downloaded_bytes: _Optional[int] = ..., download_total_bytes: _Optional[int] = ..., cached_versions: _Optional[_Iterable[int]] = ..., failed_version: _Optional[int] = ..., error: _Optional[str] = ..., checked_at: _Optional[float] = ...) -> None: ...

class FeedbackEvent(_message.Message):
    __slots__ = ("user_id", "item_id", "type", "weight", "time", "event_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    type: str
    weight: float
    time: float
    event_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., type: _Optional[str] = ..., weight: _Optional[float] = ..., time: _Optional[float] = ..., event_id: _Optional[str] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("model", "events")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    events: _containers.RepeatedCompositeFieldContainer[FeedbackEvent]
    def __init__(self, model: _Optional[str] = ..., events: _Optional[_Iterable[_Union[FeedbackEvent, _Mapping]]] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("accepted", "duplicates")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ...) -> None: ...
