defmodule UroReco.Client do
  @moduledoc """
  Calls the reco sidecar over a `UroReco.ChannelPool`.

      {:ok, rec} = UroReco.Client.recommend(Uro.Reco.Channels, user_id, n: 20, request_id: req_id)
      rec.items  #=> [%{item_id: "…", score: 0.93, rank: 1}, …]
      rec.source #=> :model | :fold_in | :popular | :ann | :random
      rec.arm    #=> "control" (nil when the user is in no experiment)

  Every function returns `{:ok, result}` or `{:error, %UroReco.Error{}}`, whose
  `:code` is the gRPC status as an atom (`:not_found`, `:invalid_argument`,
  `:unavailable`, `:deadline_exceeded`, …). `batch_recommend/3` returns a lazy
  stream instead.

  ## Call options (all functions)

    * `:timeout` - ms for the whole call, retries included (default 5_000;
      60_000 for `batch_recommend/3` and `reload/3`). It is a hard limit: the
      call returns `:deadline_exceeded` when it passes, whatever the transport
      is doing, and the server gets it as the gRPC deadline. For
      `batch_recommend/3` it also covers reading the stream.
    * `:deadline` - an absolute `DateTime` instead of `:timeout`
    * `:request_id` - sent as `x-request-id` (default: a random id)
    * `:metadata` - more gRPC metadata, e.g. `%{"authorization" => "Bearer …"}`
    * `:max_attempts` - caps the tries (default: no cap, tries until the deadline).
      A call is tried again on UNAVAILABLE, on a broken connection (which grpc
      1.0 reports as INTERNAL `:stream_error`/`:connection_error`) and while no
      channel is serving, with exponential backoff inside the deadline
    * `:backoff` - `{min_ms, max_ms}` between tries (default `{50, 500}`)

  ## Request options

    * `:model` - the model name (default: the one the sidecar serves)
    * `:n`, `:offset` - how many items, from which position (defaults 10 and 0)
    * `:filter` - keyword list or map of `exclude_item_ids`, `candidate_item_ids`,
      `categories`, `tags`, `include_seen`
    * `:recent_item_ids` (`recommend/3`) - fold-in: rank for these recent interactions
    * `:disable_fallback` - `:not_found` for an unknown user instead of popular items
    * `:experiment`, `:arm` (`recommend/3`) - QA override: put the request in this
      experiment and (with `:arm`) answer with this served arm instead of the one
      the user's hash gives. An unknown experiment, or an arm that is unknown, a
      shadow or given without `:experiment`, is `:invalid_argument`
    * `:include_jsonld` (`batch_recommend/3`) - also return JSON-LD per user
    * `:users_per_message` (`batch_recommend/3`) - users per stream message
      (default 100; 1 is the one-user form older sidecars send). Many users per
      message cost the sidecar far less per user; keep it times the size of one
      answer under the sidecar's `--max-message-bytes`. The stream's elements are
      one per user either way
    * `:max_users_per_call` (`batch_recommend/3`) - users per `BatchRecommend`
      call (default 5_000). The calls are made one after another as the stream
      is read, so at most this many users' answers are buffered however long
      the list and however slow the reader

  Recommendations carry `:experiment` and `:arm`: the experiment and arm that
  answered the user (`nil` when the user is in no experiment). The sidecar
  assigns arms by a hash of the user id, so `batch_recommend/3` gives each user
  the arm (and items) `recommend/3` gives them; when an arm answers with another
  model or a pinned version, `:model`/`:version` name it.

  `jsonld` is the schema.org `ItemList` decoded into a map (`nil` when absent).

  ## Telemetry

  Each call emits `[:uro_reco, :call, :start | :stop | :exception]` through
  `:telemetry.span/3`, with metadata `%{rpc: atom, pool: atom, request_id: binary}`
  and, on `:stop`, `result: :ok | :error` and the error `code`; a successful
  `recommend/3` also has `experiment:` and `arm:` (nil outside experiments). For
  `batch_recommend/3` the span covers opening the stream (per-user arms are in
  the elements, and `UroReco.Workers.BatchRecommend` emits them per arm).
  """

  alias UroReco.Client.{Call, Request, Response}
  alias UroReco.{ChannelPool, Error}

  @max_users_per_call 5_000

  @type recommendation :: UroReco.Recommendation.t()

  @type batch_item ::
          {:ok, recommendation()}
          | {:error, {user_id :: String.t(), Error.t()}}
          | {:error, Error.t()}

  @doc """
  Top-N unseen items for one user. `explain: k` (0..20) adds to each item up to
  `k` reasons: the user's history items that contributed most to its score.
  """
  @spec recommend(ChannelPool.pool(), String.t(), keyword()) ::
          {:ok, recommendation()} | {:error, Error.t()}
  def recommend(pool, user_id, opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.recommend(user_id, request_opts)
    Call.run(pool, :recommend, request, call_opts, &Response.recommendation/1, 5_000)
  end

  @doc "Items like `item_id`, from the sidecar's nearest-neighbour index."
  @spec similar(ChannelPool.pool(), String.t(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def similar(pool, item_id, opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.similar(item_id, request_opts)
    Call.run(pool, :similar, request, call_opts, &Response.similar/1, 5_000)
  end

  @doc """
  Recommendations for many users, as a lazy stream in request order.

  Nothing is sent until the stream is consumed. Each element is
  `{:ok, recommendation}` (with an `:index` into `user_ids`),
  `{:error, {user_id, %UroReco.Error{}}}` for a user the sidecar could not
  answer (the stream goes on), or `{:error, %UroReco.Error{}}` when the stream
  itself failed (it ends there).
  """
  @spec batch_recommend(ChannelPool.pool(), [String.t()], keyword()) :: Enumerable.t()
  def batch_recommend(pool, user_ids, opts \\ []) do
    {window, opts} = Keyword.pop(opts, :max_users_per_call, @max_users_per_call)

    unless is_integer(window) and window > 0 do
      raise ArgumentError,
            "max_users_per_call must be a positive integer, got: #{inspect(window)}"
    end

    {call_opts, request_opts} = Call.split_opts(opts)
    # Validates the request options before anything is sent.
    _ = Request.batch_recommend([], request_opts)

    # Backpressure: grpc 1.0 (gun) reads a server stream as fast as the server
    # writes it, with no flow control towards the reader, so a single call for
    # a million users would buffer every answer in the BEAM while a slow
    # consumer writes rows. Calls are opened one window of users at a time, the
    # next only once the caller has taken every answer of the one before: at
    # most one window's answers are ever held. One deadline covers them all.
    Stream.flat_map([call_opts], fn call_opts ->
      call_opts = Call.fix_deadline(call_opts, 60_000)
      # Set when a call fails: the stream ends there, and no later window is called.
      failed = :atomics.new(1, [])

      user_ids
      |> Stream.chunk_every(window)
      |> Stream.transform(0, fn ids, offset ->
        {window_items(pool, ids, offset, failed, call_opts, request_opts), offset + length(ids)}
      end)
    end)
  end

  defp window_items(pool, ids, offset, failed, call_opts, request_opts) do
    request = Request.batch_recommend(ids, request_opts)

    Stream.flat_map([request], fn request ->
      with 0 <- :atomics.get(failed, 1),
           {:ok, replies} <-
             Call.run(pool, :batch_recommend, request, call_opts, & &1, 60_000) do
        replies |> Stream.flat_map(&batch_items/1) |> Stream.map(&settle(&1, offset, failed))
      else
        1 -> []
        {:error, error} -> [settle({:error, error}, offset, failed)]
      end
    end)
  end

  # The sidecar numbers users within one call; the caller's index is into the
  # whole list. A failed call ends the stream.
  defp settle({:ok, %{index: index} = rec}, offset, _failed) when is_integer(index),
    do: {:ok, %{rec | index: index + offset}}

  defp settle({:error, %Error{}} = failure, _offset, failed) do
    :atomics.put(failed, 1, 1)
    failure
  end

  defp settle(item, _offset, _failed), do: item

  @doc "Hot-swaps every worker to `version` (a number or `\"latest\"`)."
  @spec reload(ChannelPool.pool(), String.t() | integer(), keyword()) ::
          {:ok, map()} | {:error, Error.t()}
  def reload(pool, version \\ "latest", opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.reload(version, request_opts)
    Call.run(pool, :reload, request, call_opts, &Response.reload/1, 60_000)
  end

  @doc """
  The experiments being served, with every arm and its counters (summed over
  the sidecar's workers since the file was rolled out).
  """
  @spec list_experiments(ChannelPool.pool(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def list_experiments(pool, opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.list_experiments(request_opts)
    Call.run(pool, :list_experiments, request, call_opts, &Response.list_experiments/1, 5_000)
  end

  @doc """
  Makes the sidecar read its experiments file again and serve it on every worker.
  A bad file is `:failed_precondition` naming the field; the old one keeps serving.
  """
  @spec reload_experiments(ChannelPool.pool(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def reload_experiments(pool, opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.reload_experiments(request_opts)

    Call.run(
      pool,
      :reload_experiments,
      request,
      call_opts,
      &Response.reload_experiments/1,
      60_000
    )
  end

  @doc """
  Makes the sidecar read its ranking rules file again and serve it on every
  worker; returns once every worker does. A bad file is `:failed_precondition`
  naming the field; the old rules keep serving.
  """
  @spec reload_rules(ChannelPool.pool(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def reload_rules(pool, opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.reload_rules(request_opts)
    Call.run(pool, :reload_rules, request, call_opts, &Response.reload_rules/1, 60_000)
  end

  @doc """
  What the sidecar serves: model, version, counts, versions, workers, metrics;
  `models` (every model served), `default_model` and `store` (the model store's
  state, `nil` without one).
  """
  @spec status(ChannelPool.pool(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def status(pool, opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.status(request_opts)
    Call.run(pool, :get_model_status, request, call_opts, &Response.status/1, 5_000)
  end

  # One stream message holds one user, or many with `users_per_message` > 1.
  defp batch_items({:ok, message}) do
    for user <- Response.batch_users(message) do
      case user do
        {:ok, rec} -> {:ok, rec}
        {:error, {user_id, code, text}} -> {:error, {user_id, Error.from_name(code, text)}}
      end
    end
  end

  defp batch_items({:error, %GRPC.RPCError{} = error}), do: [{:error, Call.error(error)}]

  defp batch_items({:error, reason}), do: [{:error, Error.from_name("UNKNOWN", inspect(reason))}]
end
