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

    # PostgreSQL binds at most 65,535 parameters in one statement, and each row
    # here binds one per column: past 65,535 / columns rows an insert_all is
    # refused. The column count is read off a row, so a column added later
    # lowers the limit by itself.
    @max_parameters 65_535

    @doc "The most rows one upsert statement can hold (PostgreSQL's parameter limit)."
    @spec max_rows_per_statement() :: pos_integer()
    def max_rows_per_statement, do: div(@max_parameters, columns())

    @doc "The columns one row binds."
    @spec columns() :: pos_integer()
    def columns do
      blank = %{
        user_id: "",
        items: [],
        source: :popular,
        model: "",
        version: 0,
        experiment: nil,
        arm: nil
      }

      now = DateTime.utc_now()
      map_size(row(blank, now, now))
    end

    @doc """
    Inserts or replaces the recommendations of each user (one row per user),
    valid for `ttl_seconds`, with the experiment and arm that answered them.
    Returns how many rows were written.

    Options:

      * `:rows_per_statement` - rows per `INSERT ... ON CONFLICT` (default 1_000;
        never more than `max_rows_per_statement/0`, PostgreSQL's 65,535
        parameters over the table's columns: 5,041 for 13)
      * `:timeout` - ms each statement may take (default 60_000; Ecto's own
        default is 15 s)

    Each statement commits on its own: an error part-way leaves the earlier
    rows written, and running the same upsert again is harmless.
    """
    @spec upsert(Ecto.Repo.t(), [UroReco.Client.recommendation()], pos_integer(), keyword()) ::
            non_neg_integer()
    def upsert(repo, recommendations, ttl_seconds, opts \\ [])

    def upsert(_repo, [], _ttl_seconds, _opts), do: 0

    def upsert(repo, recommendations, ttl_seconds, opts) do
      opts = UroReco.Options.validate!(:upsert, opts)
      rows_per_statement = min(opts[:rows_per_statement], max_rows_per_statement())
      timeout = opts[:timeout]

      now = DateTime.utc_now()
      expires_at = DateTime.add(now, ttl_seconds, :second)

      recommendations
      |> Stream.map(&row(&1, now, expires_at))
      |> Stream.chunk_every(rows_per_statement)
      |> Enum.reduce(0, fn rows, written ->
        {count, _} =
          repo.insert_all(UserRecommendation, rows,
            on_conflict: {:replace, @replace},
            conflict_target: [:user_id],
            timeout: timeout
          )

        written + count
      end)
    end

    defp row(rec, now, expires_at) do
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

    # NULL unless some item has a reason: a job without `explain` (or answered
    # by a baseline, which gives none) also clears the reasons of older items.
    defp reasons(items) do
      if Enum.any?(items, &(Map.get(&1, :reasons, []) != [])) do
        Enum.map(items, fn item ->
          Enum.map(Map.get(item, :reasons, []), fn reason ->
            %{
              "item_id" => reason.item_id,
              "contribution" => reason.contribution,
              "share" => reason.share
            }
          end)
        end)
      end
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
