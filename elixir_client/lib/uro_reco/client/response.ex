defmodule UroReco.Client.Response do
  @moduledoc false
  # Turns reco.v1 response messages into plain maps with atoms for enums and
  # decoded JSON-LD.

  alias Reco.V1.{
    BatchRecommendResponse,
    GetModelStatusResponse,
    RecommendResponse,
    ReloadResponse,
    SimilarResponse
  }

  @sources %{
    SOURCE_MODEL: :model,
    SOURCE_FOLD_IN: :fold_in,
    SOURCE_POPULAR: :popular,
    SOURCE_ANN: :ann
  }

  @states %{
    MODEL_STATE_LOADING: :loading,
    MODEL_STATE_AVAILABLE: :available,
    MODEL_STATE_UNLOADING: :unloading,
    MODEL_STATE_FAILED: :failed,
    MODEL_STATE_END: :end
  }

  @spec recommendation(RecommendResponse.t() | BatchRecommendResponse.t()) :: map()
  def recommendation(%{user_id: user_id} = response) do
    response
    |> common()
    |> Map.put(:user_id, user_id)
    |> put_index(response)
  end

  @spec similar(SimilarResponse.t()) :: map()
  def similar(%SimilarResponse{item_id: item_id} = response) do
    response |> common() |> Map.put(:item_id, item_id)
  end

  @spec reload(ReloadResponse.t()) :: map()
  def reload(%ReloadResponse{} = r) do
    Map.take(r, [:model, :old_version, :new_version, :load_seconds, :workers])
  end

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
      versions:
        Enum.map(s.versions, &%{version: &1.version, state: state(&1.state), error: &1.error}),
      worker: s.worker && worker(s.worker),
      workers: Enum.map(s.workers, &worker/1)
    })
  end

  defp common(response) do
    %{
      model: response.model,
      version: response.version,
      items: Enum.map(response.items, &%{item_id: &1.item_id, score: &1.score, rank: &1.rank}),
      source: Map.get(@sources, response.source, :unspecified),
      jsonld: jsonld(response.jsonld)
    }
  end

  defp put_index(map, %BatchRecommendResponse{index: index}), do: Map.put(map, :index, index)
  defp put_index(map, _response), do: map

  defp jsonld(""), do: nil
  defp jsonld(text), do: Jason.decode!(text)

  defp state(state), do: Map.get(@states, state, :unspecified)

  defp worker(%{pid: pid, address: address}), do: %{pid: pid, address: address}
end
