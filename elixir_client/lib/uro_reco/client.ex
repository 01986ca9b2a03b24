defmodule UroReco.Client do
  @moduledoc """
  Calls the reco sidecar over a `UroReco.ChannelPool`.

      {:ok, rec} = UroReco.Client.recommend(Uro.Reco.Channels, user_id, n: 20, request_id: req_id)
      rec.items  #=> [%{item_id: "…", score: 0.93, rank: 1}, …]
      rec.source #=> :model | :fold_in | :popular | :ann

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
    * `:include_jsonld` (`batch_recommend/3`) - also return JSON-LD per user

  `jsonld` is the schema.org `ItemList` decoded into a map (`nil` when absent).

  ## Telemetry

  Each call emits `[:uro_reco, :call, :start | :stop | :exception]` through
  `:telemetry.span/3`, with metadata `%{rpc: atom, pool: atom, request_id: binary}`
  and, on `:stop`, `result: :ok | :error` and the error `code`. For
  `batch_recommend/3` the span covers opening the stream.
  """

  alias UroReco.Client.{Call, Request, Response}
  alias UroReco.{ChannelPool, Error}

  @type recommendation :: %{
          model: String.t(),
          version: integer(),
          user_id: String.t(),
          items: [%{item_id: String.t(), score: float(), rank: pos_integer()}],
          source: :model | :fold_in | :popular | :ann | :unspecified,
          jsonld: map() | nil
        }

  @type batch_item ::
          {:ok, recommendation()}
          | {:error, {user_id :: String.t(), Error.t()}}
          | {:error, Error.t()}

  @doc "Top-N unseen items for one user."
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
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.batch_recommend(user_ids, request_opts)

    Stream.flat_map([request], fn request ->
      case Call.run(pool, :batch_recommend, request, call_opts, & &1, 60_000) do
        {:ok, replies} -> Stream.map(replies, &batch_item/1)
        {:error, error} -> [{:error, error}]
      end
    end)
  end

  @doc "Hot-swaps every worker to `version` (a number or `\"latest\"`)."
  @spec reload(ChannelPool.pool(), String.t() | integer(), keyword()) ::
          {:ok, map()} | {:error, Error.t()}
  def reload(pool, version \\ "latest", opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.reload(version, request_opts)
    Call.run(pool, :reload, request, call_opts, &Response.reload/1, 60_000)
  end

  @doc "What the sidecar serves: model, version, counts, versions, workers, metrics."
  @spec status(ChannelPool.pool(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def status(pool, opts \\ []) do
    {call_opts, request_opts} = Call.split_opts(opts)
    request = Request.status(request_opts)
    Call.run(pool, :get_model_status, request, call_opts, &Response.status/1, 5_000)
  end

  defp batch_item({:ok, %{error: %Reco.V1.ItemError{code: code, message: message}} = reply}),
    do: {:error, {reply.user_id, Error.from_name(code, message)}}

  defp batch_item({:ok, reply}), do: {:ok, Response.recommendation(reply)}

  defp batch_item({:error, %GRPC.RPCError{} = error}), do: {:error, Call.error(error)}

  defp batch_item({:error, reason}), do: {:error, Error.from_name("UNKNOWN", inspect(reason))}
end
