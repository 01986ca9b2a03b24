if Code.ensure_loaded?(Oban.Worker) and Code.ensure_loaded?(Ecto.Query) do
  defmodule UroReco.Workers.BatchRecommend do
    @moduledoc """
    Refreshes `user_recommendations` through the sidecar's `BatchRecommend`.

    Args, one of:

      * `%{"user_ids" => [...]}` - these users
      * `%{"after" => nil | user_id}` - a sweep over every user with interactions:
        one page of `page_size` users after the cursor, then a job for the next page

    Optional `"n"` and `"explain"` override the configured count and reasons per
    item; `"instance"` names the client instance whose settings the job uses
    (`UroReco.Jobs`, default `"UroReco"`). Users the sidecar cannot answer
    are logged and skipped; a failed stream fails the job (Oban retries it, and
    the upsert makes a retry harmless).

    With `explain` k > 0 (0..20) each item is stored with up to k reasons, the
    user's history items that contributed most to its score, in the `reasons`
    column (JSONB, parallel to `item_ids`; NULL when no item has one).

    The stream is chunked (`users_per_message` from the `:batch` settings, default
    100) and read one call of `max_users_per_call` users at a time (default
    5_000); answers are written `rows_per_statement` rows per statement (default
    1_000, at most 5,041: PostgreSQL's 65,535 parameters over 13 columns), each
    statement allowed `db_timeout` ms (default 60_000). Each row records the experiment and arm that answered its user: the
    sidecar assigns arms by a hash of the user id, so the stored arm is the one
    `Recommend` gives that user, and the job passes nothing to keep it so.

    After each upsert it emits `[:uro_reco, :batch, :stored]` once per arm, with
    measurements `%{users: count}` and metadata `%{experiment:, arm:, model:,
    version:}` (`experiment`/`arm` nil for users in no experiment).

        %{"after" => nil} |> UroReco.Workers.BatchRecommend.new() |> Oban.insert()

    With `opentelemetry_api`, a job runs in a consumer span linked to the trace
    context in its meta, as opentelemetry_oban does (see `UroReco.Tracing`): enqueue
    with `OpentelemetryOban.insert/2`, or pass `meta: UroReco.Tracing.job_meta()`.
    Its `BatchRecommend` calls are client spans inside it.
    """

    use Oban.Worker, queue: :recommendations, max_attempts: 5

    require Logger

    alias UroReco.{Client, Jobs, Recommendations}

    @impl Oban.Worker
    def perform(%Oban.Job{args: args} = job) do
      with {:ok, jobs} <- Jobs.fetch(args) do
        UroReco.Tracing.job_span(job, fn -> run(job, jobs) end)
      end
    end

    defp run(%Oban.Job{args: %{"user_ids" => user_ids} = args}, jobs) do
      with {:ok, _count} <- refresh(user_ids, args, jobs), do: :ok
    end

    defp run(%Oban.Job{args: %{"after" => cursor} = args}, jobs) do
      limit = jobs[:batch][:page_size]

      case Recommendations.user_page(jobs[:repo], cursor, limit) do
        [] ->
          :ok

        user_ids ->
          with {:ok, _count} <- refresh(user_ids, args, jobs) do
            if length(user_ids) == limit, do: next_page(args, List.last(user_ids), jobs)
            :ok
          end
      end
    end

    @doc """
    Fetches and stores recommendations for `user_ids` with the job settings
    `jobs` (`UroReco.Jobs.fetch/2`); returns the rows written.
    """
    @spec refresh([String.t()], map(), keyword()) ::
            {:ok, non_neg_integer()} | {:error, UroReco.Error.t()}
    def refresh(user_ids, args, jobs) do
      settings = jobs[:batch]
      rows = settings[:rows_per_statement]

      # Answers are written as they arrive, one statement of `rows_per_statement`
      # users at a time: neither the answers nor one INSERT grow with the job,
      # and the client opens its next call only when these are written.
      jobs[:channel_pool]
      |> Client.batch_recommend(user_ids,
        n: Map.get(args, "n", settings[:n]),
        explain: Map.get(args, "explain", settings[:explain]),
        users_per_message: settings[:users_per_message],
        max_users_per_call: settings[:max_users_per_call],
        timeout: settings[:timeout]
      )
      |> Stream.chunk_every(rows)
      |> Enum.reduce_while({:ok, 0}, fn results, {:ok, written} ->
        case store(results, jobs) do
          {:ok, count} -> {:cont, {:ok, written + count}}
          {:error, error} -> {:halt, {:error, error}}
        end
      end)
    end

    # A failed stream ends with its error: what came before it is still stored
    # (a retry rewrites it harmlessly), then the job fails.
    defp store(results, jobs) do
      settings = jobs[:batch]

      for {:error, {user_id, error}} <- results,
          do: Logger.warning("no recommendations for #{user_id}: #{Exception.message(error)}")

      recommendations = for {:ok, rec} <- results, do: rec

      count =
        Recommendations.upsert(jobs[:repo], recommendations, settings[:ttl_seconds],
          rows_per_statement: settings[:rows_per_statement],
          timeout: settings[:db_timeout]
        )

      emit_arms(recommendations)

      case Enum.find(results, &match?({:error, %UroReco.Error{}}, &1)) do
        {:error, error} -> {:error, error}
        nil -> {:ok, count}
      end
    end

    defp emit_arms(recommendations) do
      recommendations
      |> Enum.frequencies_by(&Map.take(&1, [:experiment, :arm, :model, :version]))
      |> Enum.each(fn {meta, users} ->
        UroReco.Telemetry.batch_stored(users, meta)
      end)
    end

    # The next page's args keep this one's, "instance" among them.
    defp next_page(args, last_user_id, jobs) do
      # The next page's span links to this one, as the first page's links to
      # whoever enqueued the sweep.
      job = new(Map.put(args, "after", last_user_id), meta: UroReco.Tracing.job_meta())
      {:ok, _job} = Oban.insert(jobs[:oban], job)
    end
  end
end
