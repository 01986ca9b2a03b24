if Code.ensure_loaded?(Ecto.Query) do
  defmodule UroReco.Recommendations do
    @moduledoc """
    Storage for the batch jobs: pages of users to refresh, upserts of their
    recommendations and the CSV export that training reads.
    """

    import Ecto.Query

    alias UroReco.Schemas.{UserInteraction, UserRecommendation}

    @replace [
      :item_ids,
      :scores,
      :source,
      :model,
      :version,
      :experiment,
      :arm,
      :reasons,
      :expires_at,
      :updated_at
    ]

    @default_weights %{view: 1.0, click: 2.0, like: 4.0, share: 8.0}

    @doc "Up to `limit` distinct users with interactions, after `cursor` (nil: from the start)."
    @spec user_page(Ecto.Repo.t(), Ecto.UUID.t() | nil, pos_integer()) :: [Ecto.UUID.t()]
    def user_page(repo, cursor, limit) do
      UserInteraction
      |> after_user(cursor)
      |> distinct(true)
      |> select([i], i.user_id)
      |> order_by([i], i.user_id)
      |> limit(^limit)
      |> repo.all()
    end

    defp after_user(query, nil), do: query
    defp after_user(query, cursor), do: where(query, [i], i.user_id > ^cursor)

    @doc """
    Inserts or replaces the recommendations of each user (one row per user),
    valid for `ttl_seconds`, with the experiment and arm that answered them.
    Returns how many rows were written.
    """
    @spec upsert(Ecto.Repo.t(), [UroReco.Client.recommendation()], pos_integer()) ::
            non_neg_integer()
    def upsert(_repo, [], _ttl_seconds), do: 0

    # nil unless some item carries reasons (the job asked for `explain`)
    defp reasons(items) do
      if Enum.any?(items, &(Map.get(&1, :reasons, []) != [])) do
        Map.new(items, fn item ->
          {item.item_id,
           Enum.map(
             item.reasons,
             &%{"item_id" => &1.item_id, "contribution" => &1.contribution, "share" => &1.share}
           )}
        end)
      end
    end

    def upsert(repo, recommendations, ttl_seconds) do
      now = DateTime.utc_now()
      expires_at = DateTime.add(now, ttl_seconds, :second)

      rows =
        for rec <- recommendations do
          %{
            id: Ecto.UUID.generate(),
            user_id: rec.user_id,
            item_ids: Enum.map(rec.items, & &1.item_id),
            scores: Enum.map(rec.items, & &1.score),
            source: Atom.to_string(rec.source),
            model: rec.model,
            version: rec.version,
            experiment: rec.experiment,
            arm: rec.arm,
            reasons: reasons(rec.items),
            expires_at: expires_at,
            inserted_at: now,
            updated_at: now
          }
        end

      {count, _} =
        repo.insert_all(UserRecommendation, rows,
          on_conflict: {:replace, @replace},
          conflict_target: [:user_id]
        )

      count
    end

    @doc """
    Writes every interaction to `path` as `user_id,item_id,weight,timestamp`
    (the training input), weighting each type by `weights`.
    """
    @spec export_interactions(Ecto.Repo.t(), Path.t(), %{atom() => number()}) :: :ok
    def export_interactions(repo, path, weights \\ @default_weights) do
      query =
        from i in UserInteraction,
          select: {i.user_id, i.post_id, i.interaction_type, i.created_at}

      File.open!(path, [:write, :utf8], fn file ->
        IO.write(file, "user_id,item_id,weight,timestamp\n")

        {:ok, :ok} =
          repo.transaction(
            fn ->
              query
              |> repo.stream(max_rows: 5_000)
              |> Enum.each(fn {user, post, type, at} ->
                IO.write(file, [
                  Enum.join([user, post, weights[type], DateTime.to_unix(at)], ","),
                  ?\n
                ])
              end)
            end,
            timeout: :infinity
          )
      end)

      :ok
    end
  end
end
