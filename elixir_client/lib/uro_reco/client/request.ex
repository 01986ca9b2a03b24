defmodule UroReco.Client.Request do
  @moduledoc false
  # Builds reco.v1 request messages from keyword options, rejecting unknown ones.

  alias Reco.V1.{
    BatchRecommendRequest,
    Filter,
    GetModelStatusRequest,
    ListExperimentsRequest,
    RankingReloadRulesRequest,
    RecommendRequest,
    ReloadExperimentsRequest,
    ReloadRequest,
    SimilarRequest
  }

  @spec recommend(String.t(), keyword()) :: RecommendRequest.t()
  def recommend(user_id, opts) when is_binary(user_id) do
    opts =
      Keyword.validate!(opts,
        model: "",
        n: 10,
        offset: 0,
        filter: nil,
        recent_item_ids: [],
        disable_fallback: false,
        experiment: "",
        arm: "",
        explain: 0
      )

    %RecommendRequest{
      model: opts[:model],
      user_id: user_id,
      n: opts[:n],
      offset: opts[:offset],
      filter: filter(opts[:filter]),
      recent_item_ids: opts[:recent_item_ids],
      disable_fallback: opts[:disable_fallback],
      experiment: opts[:experiment],
      arm: opts[:arm],
      explain: opts[:explain]
    }
  end

  @spec similar(String.t(), keyword()) :: SimilarRequest.t()
  def similar(item_id, opts) when is_binary(item_id) do
    opts = Keyword.validate!(opts, model: "", n: 10, offset: 0, filter: nil)

    %SimilarRequest{
      model: opts[:model],
      item_id: item_id,
      n: opts[:n],
      offset: opts[:offset],
      filter: filter(opts[:filter])
    }
  end

  @spec batch_recommend([String.t()], keyword()) :: BatchRecommendRequest.t()
  def batch_recommend(user_ids, opts) when is_list(user_ids) do
    opts =
      Keyword.validate!(opts,
        model: "",
        n: 10,
        filter: nil,
        disable_fallback: false,
        include_jsonld: false,
        users_per_message: 100,
        explain: 0
      )

    %BatchRecommendRequest{
      model: opts[:model],
      user_ids: user_ids,
      n: opts[:n],
      filter: filter(opts[:filter]),
      disable_fallback: opts[:disable_fallback],
      include_jsonld: opts[:include_jsonld],
      users_per_message: opts[:users_per_message],
      explain: opts[:explain]
    }
  end

  @spec reload(String.t() | integer(), keyword()) :: ReloadRequest.t()
  def reload(version, opts) do
    opts = Keyword.validate!(opts, model: "")
    %ReloadRequest{model: opts[:model], version: to_string(version)}
  end

  @spec status(keyword()) :: GetModelStatusRequest.t()
  def status(opts) do
    opts = Keyword.validate!(opts, model: "")
    %GetModelStatusRequest{model: opts[:model]}
  end

  @spec list_experiments(keyword()) :: ListExperimentsRequest.t()
  def list_experiments(opts) do
    Keyword.validate!(opts, [])
    %ListExperimentsRequest{}
  end

  @spec reload_experiments(keyword()) :: ReloadExperimentsRequest.t()
  def reload_experiments(opts) do
    Keyword.validate!(opts, [])
    %ReloadExperimentsRequest{}
  end

  @spec reload_rules(keyword()) :: RankingReloadRulesRequest.t()
  def reload_rules(opts) do
    Keyword.validate!(opts, [])
    %RankingReloadRulesRequest{}
  end

  defp filter(nil), do: nil
  defp filter(filter), do: struct!(Filter, Map.new(filter))
end
