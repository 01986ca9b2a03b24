if Code.ensure_loaded?(Oban.Worker) and Code.ensure_loaded?(Ecto.Query) do
  defmodule UroReco.Workers.BatchRecommend do
    @moduledoc """
    Refreshes `user_recommendations` through the sidecar's `BatchRecommend`.

    Args, one of:

      * `%{"user_ids" => [...]}` - these users
      * `%{"after" => nil | user_id}` - a sweep over every user with interactions:
        one page of `page_size` users after the cursor, then a job for the next page

    Optional `"n"` overrides the configured count, and `"explain"` (or `explain:` in
    the `:batch` config, default 0) stores up to that many reasons per item in
    `reasons`. Users the sidecar cannot answer
    are logged and skipped; a failed stream fails the job (Oban retries it, and
    the upsert makes a retry harmless).

    The stream is chunked (`users_per_message` from the `:batch` config, default
    100). Each row records the experiment and arm that answered its user: the
    sidecar assigns arms by a hash of the user id, so the stored arm is the one
    `Recommend` gives that user, and the job passes nothing to keep it so.

    After each upsert it emits `[:uro_reco, :batch, :stored]` once per arm, with
    measurements `%{users: count}` and metadata `%{experiment:, arm:, model:,
    version:}` (`experiment`/`arm` nil for users in no experiment).

        %{"after" => nil} |> UroReco.Workers.BatchRecommend.new() |> Oban.insert()
    """

    use Oban.Worker, queue: :recommendations, max_attempts: 5

    require Logger

    alias UroReco.{Client, Config, Recommendations}

    @impl Oban.Worker
    def perform(%Oban.Job{args: %{"user_ids" => user_ids} = args}) do
      with {:ok, _count} <- refresh(user_ids, args), do: :ok
    end

    def perform(%Oban.Job{args: %{"after" => cursor} = args}) do
      limit = Config.batch()[:page_size]

      case Recommendations.user_page(Config.repo(), cursor, limit) do
        [] ->
          :ok

        user_ids ->
          with {:ok, _count} <- refresh(user_ids, args) do
            if length(user_ids) == limit, do: next_page(args, List.last(user_ids))
            :ok
          end
      end
    end

    @doc "Fetches and stores recommendations for `user_ids`; returns the rows written."
    @spec refresh([String.t()], map()) :: {:ok, non_neg_integer()} | {:error, UroReco.Error.t()}
    def refresh(user_ids, args \\ %{}) do
      settings = Config.batch()

      results =
        Config.channel_pool()
        |> Client.batch_recommend(user_ids,
          n: Map.get(args, "n", settings[:n]),
          users_per_message: settings[:users_per_message],
          explain: Map.get(args, "explain", settings[:explain]),
          timeout: settings[:timeout]
        )
        |> Enum.to_list()

      case Enum.find(results, &match?({:error, %UroReco.Error{}}, &1)) do
        {:error, error} ->
          {:error, error}

        nil ->
          for {:error, {user_id, error}} <- results,
              do: Logger.warning("no recommendations for #{user_id}: #{Exception.message(error)}")

          recommendations = for {:ok, rec} <- results, do: rec
          count = Recommendations.upsert(Config.repo(), recommendations, settings[:ttl_seconds])
          emit_arms(recommendations)
          {:ok, count}
      end
    end

    defp emit_arms(recommendations) do
      recommendations
      |> Enum.frequencies_by(&Map.take(&1, [:experiment, :arm, :model, :version]))
      |> Enum.each(fn {meta, users} ->
        :telemetry.execute([:uro_reco, :batch, :stored], %{users: users}, meta)
      end)
    end

    defp next_page(args, last_user_id) do
      {:ok, _job} = Oban.insert(Config.oban(), new(Map.put(args, "after", last_user_id)))
    end
  end
end
