defmodule UroReco.Client.Response do
  @moduledoc false
  # Turns reco.v1 response messages into plain maps with atoms for enums and
  # decoded JSON-LD.

  alias Reco.V1.{
    BatchRecommendResponse,
    BatchUserResult,
    GetModelStatusResponse,
    ListExperimentsResponse,
    RankingReloadRulesResponse,
    RecommendResponse,
    ReloadExperimentsResponse,
    ReloadResponse,
    SimilarResponse
  }

  @sources %{
    SOURCE_MODEL: :model,
    SOURCE_FOLD_IN: :fold_in,
    SOURCE_POPULAR: :popular,
    SOURCE_ANN: :ann,
    SOURCE_RANDOM: :random,
    SOURCE_ONLINE: :online,
    SOURCE_ONLINE_NEW_USER: :online_new_user
  }

  @states %{
    MODEL_STATE_LOADING: :loading,
    MODEL_STATE_AVAILABLE: :available,
    MODEL_STATE_UNLOADING: :unloading,
    MODEL_STATE_FAILED: :failed,
    MODEL_STATE_END: :end
  }

  @spec recommendation(RecommendResponse.t() | BatchRecommendResponse.t()) ::
          UroReco.Recommendation.t()
  def recommendation(%{user_id: user_id} = response) do
    fields =
      response
      |> common()
      |> Map.merge(%{
        user_id: user_id,
        experiment: blank(response.experiment),
        arm: blank(response.arm)
      })
      |> put_index(response)

    struct!(UroReco.Recommendation, fields)
  end

  @doc """
  The users of one BatchRecommend stream message, in request order: itself in the
  one-user form, its `users` in the chunked form (`users_per_message` > 1). Each
  is `{:ok, reply}` or `{:error, {user_id, code, message}}` for a user the sidecar
  could not answer.
  """
  @spec batch_users(BatchRecommendResponse.t()) :: [
          {:ok, map()} | {:error, {String.t(), String.t(), String.t()}}
        ]
  def batch_users(%BatchRecommendResponse{users: []} = message), do: [batch_user(message)]

  def batch_users(%BatchRecommendResponse{users: users} = message) do
    # A user answered by an arm with another model or version names it; the
    # others are the message's.
    for %BatchUserResult{} = user <- users do
      user
      |> Map.merge(%{
        model: if(user.model == "", do: message.model, else: user.model),
        version: if(user.version == 0, do: message.version, else: user.version)
      })
      |> batch_user()
    end
  end

  defp batch_user(%{error: %Reco.V1.ItemError{code: code, message: text}, user_id: user_id}),
    do: {:error, {user_id, code, text}}

  defp batch_user(reply), do: {:ok, reply |> recommendation() |> Map.put(:index, reply.index)}

  @spec similar(SimilarResponse.t()) :: map()
  def similar(%SimilarResponse{item_id: item_id} = response) do
    response |> common() |> Map.put(:item_id, item_id)
  end

  @spec reload(ReloadResponse.t()) :: map()
  def reload(%ReloadResponse{} = r) do
    Map.take(r, [:model, :old_version, :new_version, :load_seconds, :workers])
  end

  @spec list_experiments(ListExperimentsResponse.t()) :: map()
  def list_experiments(%ListExperimentsResponse{} = r) do
    %{
      generation: r.generation,
      worker: r.worker && worker(r.worker),
      experiments:
        Enum.map(r.experiments, fn e ->
          %{
            name: e.name,
            salt: e.salt,
            share: e.share,
            arms: Enum.map(e.arms, &experiment_arm/1)
          }
        end)
    }
  end

  @spec reload_experiments(ReloadExperimentsResponse.t()) :: map()
  def reload_experiments(%ReloadExperimentsResponse{} = r),
    do: Map.take(r, [:generation, :experiments, :workers])

  @spec reload_rules(RankingReloadRulesResponse.t()) :: map()
  def reload_rules(%RankingReloadRulesResponse{} = r),
    do: Map.take(r, [:generation, :rule_sets, :workers])

  @spec status(GetModelStatusResponse.t()) :: map()
  def status(%GetModelStatusResponse{} = s) do
    s
    |> Map.take([
      :model,
      :version,
      :user_count,
      :item_count,
      :factors,
      :algorithm,
      :loaded_at,
      :load_seconds,
      :path,
      :shared_address,
      :has_item_metadata,
      :metrics
    ])
    |> Map.merge(%{
      state: state(s.state),
      versions: versions(s.versions),
      worker: s.worker && worker(s.worker),
      workers: Enum.map(s.workers, &worker/1),
      default_model: s.default_model,
      models: Enum.map(s.models, &model_status/1),
      store: s.store && store(s.store)
    })
  end

  defp model_status(m) do
    m
    |> Map.take([
      :model,
      :version,
      :user_count,
      :item_count,
      :factors,
      :algorithm,
      :loaded_at,
      :load_seconds,
      :path,
      :has_item_metadata,
      :metrics
    ])
    |> Map.merge(%{state: state(m.state), versions: versions(m.versions)})
  end

  defp versions(versions),
    do: Enum.map(versions, &%{version: &1.version, state: state(&1.state), error: &1.error})

  defp store(store) do
    Map.take(store, [
      :uri,
      :target_version,
      :downloading_version,
      :downloaded_bytes,
      :download_total_bytes,
      :cached_versions,
      :failed_version,
      :error,
      :checked_at
    ])
  end

  defp experiment_arm(arm) do
    Map.take(arm, [
      :name,
      :model,
      :baseline,
      :shadow,
      :weight,
      :traffic_share,
      :requests,
      :overrides,
      :shadow_scored,
      :shadow_dropped,
      :mean_overlap,
      :mean_rank_correlation
    ])
  end

  defp common(response) do
    %{
      model: response.model,
      version: response.version,
      items: Enum.map(response.items, &item/1),
      source: Map.get(@sources, response.source, :unspecified),
      jsonld: jsonld(response.jsonld)
    }
  end

  # `reasons` is empty unless the request asked for `explain:`; `pinned` marks an
  # editorial pin (docs/ranking.md).
  defp item(i) do
    %{
      item_id: i.item_id,
      score: i.score,
      rank: i.rank,
      pinned: i.pinned,
      reasons:
        Enum.map(
          i.reasons,
          &%{item_id: &1.item_id, contribution: &1.contribution, share: &1.share}
        )
    }
  end

  defp put_index(map, %BatchRecommendResponse{index: index}), do: Map.put(map, :index, index)
  defp put_index(map, _response), do: map

  # Empty in the proto when the user is in no experiment.
  defp blank(""), do: nil
  defp blank(value), do: value

  defp jsonld(""), do: nil
  defp jsonld(text), do: Jason.decode!(text)

  defp state(state), do: Map.get(@states, state, :unspecified)

  defp worker(%{pid: pid, address: address}), do: %{pid: pid, address: address}
end
