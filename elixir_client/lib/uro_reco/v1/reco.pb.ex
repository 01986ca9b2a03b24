defmodule Reco.V1.Source do
  @moduledoc false

  use Protobuf,
    enum: true,
    full_name: "reco.v1.Source",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :SOURCE_UNSPECIFIED, 0
  field :SOURCE_MODEL, 1
  field :SOURCE_FOLD_IN, 2
  field :SOURCE_POPULAR, 3
  field :SOURCE_ANN, 4
  field :SOURCE_RANDOM, 5
  field :SOURCE_ONLINE, 6
  field :SOURCE_ONLINE_NEW_USER, 7
end

defmodule Reco.V1.ModelState do
  @moduledoc false

  use Protobuf,
    enum: true,
    full_name: "reco.v1.ModelState",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :MODEL_STATE_UNSPECIFIED, 0
  field :MODEL_STATE_LOADING, 1
  field :MODEL_STATE_AVAILABLE, 2
  field :MODEL_STATE_UNLOADING, 3
  field :MODEL_STATE_FAILED, 4
  field :MODEL_STATE_END, 5
end

defmodule Reco.V1.ScoredItem do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ScoredItem",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :item_id, 1, type: :string, json_name: "itemId"
  field :score, 2, type: :float
  field :rank, 3, type: :uint32
  field :reasons, 40, repeated: true, type: Reco.V1.RankingReason
  field :pinned, 41, type: :bool
end

defmodule Reco.V1.RankingReason do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.RankingReason",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :item_id, 1, type: :string, json_name: "itemId"
  field :contribution, 2, type: :float
  field :share, 3, type: :float
end

defmodule Reco.V1.Filter do
  @moduledoc false

  use Protobuf, full_name: "reco.v1.Filter", protoc_gen_elixir_version: "0.17.0", syntax: :proto3

  field :exclude_item_ids, 1, repeated: true, type: :string, json_name: "excludeItemIds"
  field :candidate_item_ids, 2, repeated: true, type: :string, json_name: "candidateItemIds"
  field :categories, 3, repeated: true, type: :string
  field :tags, 4, repeated: true, type: :string
  field :include_seen, 5, type: :bool, json_name: "includeSeen"
end

defmodule Reco.V1.RecommendRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.RecommendRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :user_id, 2, type: :string, json_name: "userId"
  field :n, 3, type: :int32
  field :offset, 4, type: :int32
  field :filter, 5, type: Reco.V1.Filter
  field :recent_item_ids, 6, repeated: true, type: :string, json_name: "recentItemIds"
  field :disable_fallback, 7, type: :bool, json_name: "disableFallback"
  field :experiment, 20, type: :string
  field :arm, 21, type: :string
  field :omit_jsonld, 8, type: :bool, json_name: "omitJsonld"
  field :explain, 40, type: :uint32
end

defmodule Reco.V1.RecommendResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.RecommendResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :version, 2, type: :int64
  field :user_id, 3, type: :string, json_name: "userId"
  field :items, 4, repeated: true, type: Reco.V1.ScoredItem
  field :source, 5, type: Reco.V1.Source, enum: true
  field :jsonld, 6, type: :string
  field :experiment, 20, type: :string
  field :arm, 21, type: :string
end

defmodule Reco.V1.SimilarRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.SimilarRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :item_id, 2, type: :string, json_name: "itemId"
  field :n, 3, type: :int32
  field :offset, 4, type: :int32
  field :filter, 5, type: Reco.V1.Filter
  field :omit_jsonld, 6, type: :bool, json_name: "omitJsonld"
end

defmodule Reco.V1.SimilarResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.SimilarResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :version, 2, type: :int64
  field :item_id, 3, type: :string, json_name: "itemId"
  field :items, 4, repeated: true, type: Reco.V1.ScoredItem
  field :source, 5, type: Reco.V1.Source, enum: true
  field :jsonld, 6, type: :string
end

defmodule Reco.V1.BatchRecommendRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.BatchRecommendRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :user_ids, 2, repeated: true, type: :string, json_name: "userIds"
  field :n, 3, type: :int32
  field :filter, 4, type: Reco.V1.Filter
  field :disable_fallback, 5, type: :bool, json_name: "disableFallback"
  field :include_jsonld, 6, type: :bool, json_name: "includeJsonld"
  field :users_per_message, 7, type: :uint32, json_name: "usersPerMessage"
  field :explain, 40, type: :uint32
end

defmodule Reco.V1.ItemError do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ItemError",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :code, 1, type: :string
  field :message, 2, type: :string
end

defmodule Reco.V1.BatchRecommendResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.BatchRecommendResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :version, 2, type: :int64
  field :user_id, 3, type: :string, json_name: "userId"
  field :index, 4, type: :uint32
  field :items, 5, repeated: true, type: Reco.V1.ScoredItem
  field :source, 6, type: Reco.V1.Source, enum: true
  field :jsonld, 7, type: :string
  field :error, 8, type: Reco.V1.ItemError
  field :users, 9, repeated: true, type: Reco.V1.BatchUserResult
  field :experiment, 20, type: :string
  field :arm, 21, type: :string
end

defmodule Reco.V1.BatchUserResult do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.BatchUserResult",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :user_id, 1, type: :string, json_name: "userId"
  field :index, 2, type: :uint32
  field :items, 3, repeated: true, type: Reco.V1.ScoredItem
  field :source, 4, type: Reco.V1.Source, enum: true
  field :jsonld, 5, type: :string
  field :error, 6, type: Reco.V1.ItemError
  field :experiment, 20, type: :string
  field :arm, 21, type: :string
  field :model, 22, type: :string
  field :version, 23, type: :int64
end

defmodule Reco.V1.ReloadRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ReloadRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :version, 2, type: :string
end

defmodule Reco.V1.ReloadResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ReloadResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :old_version, 2, type: :int64, json_name: "oldVersion"
  field :new_version, 3, type: :int64, json_name: "newVersion"
  field :load_seconds, 4, type: :double, json_name: "loadSeconds"
  field :workers, 5, type: :uint32
end

defmodule Reco.V1.GetModelStatusRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.GetModelStatusRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
end

defmodule Reco.V1.ModelVersionStatus do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ModelVersionStatus",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :version, 1, type: :int64
  field :state, 2, type: Reco.V1.ModelState, enum: true
  field :error, 3, type: :string
end

defmodule Reco.V1.WorkerInfo do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.WorkerInfo",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :pid, 1, type: :int32
  field :address, 2, type: :string
end

defmodule Reco.V1.GetModelStatusResponse.MetricsEntry do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.GetModelStatusResponse.MetricsEntry",
    map: true,
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :key, 1, type: :string
  field :value, 2, type: :double
end

defmodule Reco.V1.GetModelStatusResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.GetModelStatusResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :version, 2, type: :int64
  field :state, 3, type: Reco.V1.ModelState, enum: true
  field :user_count, 4, type: :uint64, json_name: "userCount"
  field :item_count, 5, type: :uint64, json_name: "itemCount"
  field :factors, 6, type: :uint32
  field :algorithm, 7, type: :string
  field :loaded_at, 8, type: :double, json_name: "loadedAt"
  field :load_seconds, 9, type: :double, json_name: "loadSeconds"
  field :path, 10, type: :string
  field :versions, 11, repeated: true, type: Reco.V1.ModelVersionStatus
  field :worker, 12, type: Reco.V1.WorkerInfo
  field :workers, 13, repeated: true, type: Reco.V1.WorkerInfo
  field :shared_address, 14, type: :string, json_name: "sharedAddress"
  field :has_item_metadata, 15, type: :bool, json_name: "hasItemMetadata"
  field :metrics, 16, repeated: true, type: Reco.V1.GetModelStatusResponse.MetricsEntry, map: true
  field :store, 17, type: Reco.V1.StoreStatus
  field :models, 20, repeated: true, type: Reco.V1.ModelStatus
  field :default_model, 21, type: :string, json_name: "defaultModel"
end

defmodule Reco.V1.StoreStatus do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.StoreStatus",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :uri, 1, type: :string
  field :target_version, 2, type: :int64, json_name: "targetVersion"
  field :downloading_version, 3, type: :int64, json_name: "downloadingVersion"
  field :downloaded_bytes, 4, type: :uint64, json_name: "downloadedBytes"
  field :download_total_bytes, 5, type: :uint64, json_name: "downloadTotalBytes"
  field :cached_versions, 6, repeated: true, type: :int64, json_name: "cachedVersions"
  field :failed_version, 7, type: :int64, json_name: "failedVersion"
  field :error, 8, type: :string
  field :checked_at, 9, type: :double, json_name: "checkedAt"
end

defmodule Reco.V1.ModelStatus.MetricsEntry do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ModelStatus.MetricsEntry",
    map: true,
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :key, 1, type: :string
  field :value, 2, type: :double
end

defmodule Reco.V1.ModelStatus do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ModelStatus",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :version, 2, type: :int64
  field :state, 3, type: Reco.V1.ModelState, enum: true
  field :user_count, 4, type: :uint64, json_name: "userCount"
  field :item_count, 5, type: :uint64, json_name: "itemCount"
  field :factors, 6, type: :uint32
  field :algorithm, 7, type: :string
  field :loaded_at, 8, type: :double, json_name: "loadedAt"
  field :load_seconds, 9, type: :double, json_name: "loadSeconds"
  field :path, 10, type: :string
  field :versions, 11, repeated: true, type: Reco.V1.ModelVersionStatus
  field :has_item_metadata, 12, type: :bool, json_name: "hasItemMetadata"
  field :metrics, 13, repeated: true, type: Reco.V1.ModelStatus.MetricsEntry, map: true
end

defmodule Reco.V1.ListExperimentsRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ListExperimentsRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3
end

defmodule Reco.V1.ExperimentArm do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ExperimentArm",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :name, 1, type: :string
  field :model, 2, type: :string
  field :baseline, 3, type: :string
  field :shadow, 4, type: :bool
  field :weight, 5, type: :double
  field :traffic_share, 6, type: :double, json_name: "trafficShare"
  field :requests, 7, type: :uint64
  field :overrides, 8, type: :uint64
  field :shadow_scored, 9, type: :uint64, json_name: "shadowScored"
  field :shadow_dropped, 10, type: :uint64, json_name: "shadowDropped"
  field :mean_overlap, 11, type: :double, json_name: "meanOverlap"
  field :mean_rank_correlation, 12, type: :double, json_name: "meanRankCorrelation"
end

defmodule Reco.V1.Experiment do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.Experiment",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :name, 1, type: :string
  field :salt, 2, type: :string
  field :share, 3, type: :double
  field :arms, 4, repeated: true, type: Reco.V1.ExperimentArm
end

defmodule Reco.V1.ListExperimentsResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ListExperimentsResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :experiments, 1, repeated: true, type: Reco.V1.Experiment
  field :generation, 2, type: :uint64
  field :worker, 4, type: Reco.V1.WorkerInfo
end

defmodule Reco.V1.ReloadExperimentsRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ReloadExperimentsRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3
end

defmodule Reco.V1.ReloadExperimentsResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.ReloadExperimentsResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :generation, 1, type: :uint64
  field :experiments, 2, type: :uint32
  field :workers, 3, type: :uint32
end

defmodule Reco.V1.FeedbackEvent do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.FeedbackEvent",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :user_id, 1, type: :string, json_name: "userId"
  field :item_id, 2, type: :string, json_name: "itemId"
  field :type, 3, type: :string
  field :weight, 4, type: :double
  field :time, 5, type: :double
  field :event_id, 6, type: :string, json_name: "eventId"
end

defmodule Reco.V1.FeedbackRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.FeedbackRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :model, 1, type: :string
  field :events, 2, repeated: true, type: Reco.V1.FeedbackEvent
end

defmodule Reco.V1.FeedbackResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.FeedbackResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :accepted, 1, type: :uint32
  field :duplicates, 2, type: :uint32
end

defmodule Reco.V1.RankingReloadRulesRequest do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.RankingReloadRulesRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3
end

defmodule Reco.V1.RankingReloadRulesResponse do
  @moduledoc false

  use Protobuf,
    full_name: "reco.v1.RankingReloadRulesResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :generation, 1, type: :uint64
  field :rule_sets, 2, type: :uint32, json_name: "ruleSets"
  field :workers, 3, type: :uint32
end

defmodule Reco.V1.Recommender.Service do
  @moduledoc false

  use GRPC.Service, name: "reco.v1.Recommender", protoc_gen_elixir_version: "0.17.0"

  rpc :Recommend, Reco.V1.RecommendRequest, Reco.V1.RecommendResponse

  rpc :Similar, Reco.V1.SimilarRequest, Reco.V1.SimilarResponse

  rpc :BatchRecommend, Reco.V1.BatchRecommendRequest, stream(Reco.V1.BatchRecommendResponse)

  rpc :Reload, Reco.V1.ReloadRequest, Reco.V1.ReloadResponse

  rpc :GetModelStatus, Reco.V1.GetModelStatusRequest, Reco.V1.GetModelStatusResponse

  rpc :ListExperiments, Reco.V1.ListExperimentsRequest, Reco.V1.ListExperimentsResponse

  rpc :ReloadExperiments, Reco.V1.ReloadExperimentsRequest, Reco.V1.ReloadExperimentsResponse

  rpc :Feedback, Reco.V1.FeedbackRequest, Reco.V1.FeedbackResponse

  rpc :FeedbackStream, stream(Reco.V1.FeedbackRequest), Reco.V1.FeedbackResponse

  rpc :ReloadRules, Reco.V1.RankingReloadRulesRequest, Reco.V1.RankingReloadRulesResponse
end

defmodule Reco.V1.Recommender.Stub do
  @moduledoc false

  use GRPC.Stub, service: Reco.V1.Recommender.Service
end
