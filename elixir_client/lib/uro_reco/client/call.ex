defmodule UroReco.Client.Call do
  @moduledoc false
  # Runs one RPC on a pooled channel: one deadline for all attempts, enforced as a
  # hard limit; retries on UNAVAILABLE (and on transport failures, which grpc 1.0
  # reports as INTERNAL) with backoff until the deadline; x-request-id metadata;
  # gRPC errors mapped to UroReco.Error; a :telemetry span per call, and an
  # OpenTelemetry client span with the trace context as metadata (UroReco.Tracing).

  alias Reco.V1.Recommender.Stub
  alias UroReco.{Backoff, ChannelPool, Error, Tracing}
  alias UroReco.Client.Deadline

  @call_opts [:timeout, :deadline, :metadata, :request_id, :max_attempts, :backoff]
  @deadline_exceeded 4
  @internal 13
  @unavailable 14
  @streams [:batch_recommend]

  @type rpc ::
          :recommend
          | :similar
          | :batch_recommend
          | :reload
          | :get_model_status
          | :list_experiments
          | :reload_experiments
          | :feedback
          | :reload_rules

  @doc "Splits a caller's options into call options and request options."
  @spec split_opts(keyword()) :: {keyword(), keyword()}
  def split_opts(opts), do: Keyword.split(opts, @call_opts)

  @doc """
  Calls `rpc` and decodes its reply with `decode`. A streaming reply is handed to
  `decode` as a stream whose elements are read within the same deadline.
  """
  @spec run(ChannelPool.pool(), rpc(), struct(), keyword(), (term() -> term()), timeout()) ::
          {:ok, term()} | {:error, Error.t()}
  def run(pool, rpc, request, opts, decode, default_timeout) do
    ctx = context(opts, default_timeout)
    meta = %{rpc: rpc, pool: pool, request_id: ctx.request_id}

    :telemetry.span([:uro_reco, :call], meta, fn ->
      result =
        Tracing.client_span(rpc, fn trace_metadata ->
          ctx = %{ctx | metadata: Map.merge(ctx.metadata, trace_metadata)}
          attempt(pool, rpc, request, ctx, 0, nil)
        end)

      result =
        case result do
          {:ok, reply} when rpc in @streams ->
            {:ok, decode.(Deadline.stream(reply, ctx.deadline, &stream_failure/1))}

          {:ok, reply} ->
            {:ok, decode.(reply)}

          {:error, _} = error ->
            error
        end

      {result, Map.merge(meta, outcome(result))}
    end)
  end

  @doc """
  `opts` with `:timeout` (or `default_timeout`) turned into an absolute
  `:deadline`, so several calls made one after another share one deadline.
  """
  @spec fix_deadline(keyword(), timeout()) :: keyword()
  def fix_deadline(opts, default_timeout) do
    case Keyword.fetch(opts, :deadline) do
      {:ok, %DateTime{}} ->
        opts

      :error ->
        {timeout, opts} = Keyword.pop(opts, :timeout, default_timeout)
        Keyword.put(opts, :deadline, DateTime.add(DateTime.utc_now(), timeout, :millisecond))
    end
  end

  @doc """
  The `UroReco.Error` for a gRPC error. grpc 1.0 reports a broken connection
  (`:stream_error`, `:connection_error`) as INTERNAL; it is UNAVAILABLE.
  """
  @spec error(GRPC.RPCError.t()) :: Error.t()
  def error(%GRPC.RPCError{status: status, message: message}) do
    if transport_failure?(status, message),
      do: Error.from_status(@unavailable, message),
      else: Error.from_status(status, message)
  end

  defp transport_failure?(@internal, ":stream_error: " <> _), do: true
  defp transport_failure?(@internal, ":connection_error: " <> _), do: true
  defp transport_failure?(_status, _message), do: false

  defp context(opts, default_timeout) do
    request_id = Keyword.get_lazy(opts, :request_id, &request_id/0)
    {min, max} = Keyword.get(opts, :backoff, {50, 500})

    %{
      request_id: request_id,
      deadline: deadline(opts, default_timeout),
      metadata:
        Map.merge(Map.new(Keyword.get(opts, :metadata, %{})), %{"x-request-id" => request_id}),
      max_attempts: Keyword.get(opts, :max_attempts, :infinity),
      backoff: Backoff.new(min, max)
    }
  end

  defp deadline(opts, default_timeout) do
    case Keyword.fetch(opts, :deadline) do
      {:ok, %DateTime{} = at} ->
        Deadline.after_ms(max(DateTime.diff(at, DateTime.utc_now(), :millisecond), 0))

      :error ->
        Deadline.after_ms(Keyword.get(opts, :timeout, default_timeout))
    end
  end

  defp attempt(pool, rpc, request, ctx, n, last_error) do
    remaining = Deadline.remaining(ctx.deadline)

    with true <- remaining > 0 || :deadline,
         {:ok, channel, watcher} <- ChannelPool.pick_watched(pool) do
      call = fn ->
        apply(Stub, rpc, [channel, request, [timeout: remaining, metadata: ctx.metadata]])
      end

      case Deadline.run(ctx.deadline, call, watch: watcher) do
        {:ok, {:ok, reply}} ->
          {:ok, reply}

        {:ok, {:error, %GRPC.RPCError{} = rpc_error}} ->
          case error(rpc_error) do
            %Error{code: :unavailable} = error ->
              ChannelPool.report_unavailable(pool, channel)
              retry(pool, rpc, request, ctx, n, error)

            error ->
              {:error, error}
          end

        # The channel's connection process went away under the call.
        {:exit, reason} ->
          ChannelPool.report_unavailable(pool, channel)
          retry(pool, rpc, request, ctx, n, Error.from_status(@unavailable, inspect(reason)))

        {:ok, {:error, reason}} ->
          ChannelPool.report_unavailable(pool, channel)
          retry(pool, rpc, request, ctx, n, Error.from_status(@unavailable, inspect(reason)))

        # The connection closed under the call (its health stream ended): gun
        # would hold the request until the deadline.
        {:down, reason} ->
          error = Error.from_status(@unavailable, "connection closed: #{inspect(reason)}")
          retry(pool, rpc, request, ctx, n, error)

        :timeout ->
          {:error, Error.from_status(@deadline_exceeded, "deadline passed during the call")}
      end
    else
      :deadline -> {:error, deadline_error(last_error, n)}
      {:error, :no_channel} -> retry(pool, rpc, request, ctx, n, no_channel())
    end
  end

  defp retry(_pool, _rpc, _request, %{max_attempts: max}, n, error)
       when is_integer(max) and n + 1 >= max,
       do: {:error, error}

  defp retry(pool, rpc, request, ctx, n, error) do
    Process.sleep(min(Backoff.delay(ctx.backoff, n), Deadline.remaining(ctx.deadline)))
    attempt(pool, rpc, request, ctx, n + 1, error)
  end

  defp deadline_error(nil, _n),
    do: Error.from_status(@deadline_exceeded, "deadline passed before the call")

  defp deadline_error(%Error{} = last, n) do
    Error.from_status(
      @deadline_exceeded,
      "deadline passed after #{n} attempts; last: #{Exception.message(last)}"
    )
  end

  defp no_channel, do: Error.from_status(@unavailable, "no serving channel")

  defp stream_failure(:timeout),
    do: {:error, GRPC.RPCError.exception(@deadline_exceeded, "deadline passed in the stream")}

  defp stream_failure({:exit, reason}),
    do: {:error, GRPC.RPCError.exception(@unavailable, inspect(reason))}

  # A recommendation names the experiment and arm that answered it (nil for none),
  # so metrics can be tagged by arm.
  defp outcome({:ok, %{arm: arm, experiment: experiment}}),
    do: %{result: :ok, experiment: experiment, arm: arm}

  defp outcome({:ok, _}), do: %{result: :ok}
  defp outcome({:error, %Error{code: code}}), do: %{result: :error, code: code}

  defp request_id, do: Base.encode16(:crypto.strong_rand_bytes(8), case: :lower)
end
