defmodule UroReco.Client.Call do
  @moduledoc false
  # Runs one RPC on a pooled channel: one deadline for all attempts, retries on
  # UNAVAILABLE with backoff while the deadline allows, x-request-id metadata,
  # gRPC errors mapped to UroReco.Error, and a :telemetry span per call.

  alias Reco.V1.Recommender.Stub
  alias UroReco.{Backoff, ChannelPool, Error}

  @call_opts [:timeout, :deadline, :metadata, :request_id, :max_attempts, :backoff]
  @deadline_exceeded 4
  @unavailable 14

  @type rpc :: :recommend | :similar | :batch_recommend | :reload | :get_model_status

  @doc "Splits a caller's options into call options and request options."
  @spec split_opts(keyword()) :: {keyword(), keyword()}
  def split_opts(opts), do: Keyword.split(opts, @call_opts)

  @doc "Calls `rpc` and decodes its reply with `decode`."
  @spec run(ChannelPool.pool(), rpc(), struct(), keyword(), (term() -> term()), timeout()) ::
          {:ok, term()} | {:error, Error.t()}
  def run(pool, rpc, request, opts, decode, default_timeout) do
    ctx = context(opts, default_timeout)
    meta = %{rpc: rpc, pool: pool, request_id: ctx.request_id}

    :telemetry.span([:uro_reco, :call], meta, fn ->
      result =
        case attempt(pool, rpc, request, ctx, 0) do
          {:ok, reply} -> {:ok, decode.(reply)}
          {:error, _} = error -> error
        end

      {result, Map.merge(meta, outcome(result))}
    end)
  end

  defp context(opts, default_timeout) do
    request_id = Keyword.get_lazy(opts, :request_id, &request_id/0)
    {min, max} = Keyword.get(opts, :backoff, {50, 1_000})

    %{
      request_id: request_id,
      deadline: deadline(opts, default_timeout),
      metadata:
        Map.merge(Map.new(Keyword.get(opts, :metadata, %{})), %{"x-request-id" => request_id}),
      max_attempts: Keyword.get(opts, :max_attempts, 4),
      backoff: Backoff.new(min, max)
    }
  end

  defp deadline(opts, default_timeout) do
    case Keyword.fetch(opts, :deadline) do
      {:ok, %DateTime{} = at} ->
        now() + max(DateTime.diff(at, DateTime.utc_now(), :millisecond), 0)

      :error ->
        now() + Keyword.get(opts, :timeout, default_timeout)
    end
  end

  defp attempt(pool, rpc, request, ctx, n) do
    remaining = ctx.deadline - now()

    with true <- remaining > 0 || :deadline,
         {:ok, channel} <- ChannelPool.pick(pool) do
      case apply(Stub, rpc, [channel, request, [timeout: remaining, metadata: ctx.metadata]]) do
        {:ok, reply} ->
          {:ok, reply}

        {:error, %GRPC.RPCError{status: @unavailable, message: message}} ->
          ChannelPool.report_unavailable(pool, channel)
          retry(pool, rpc, request, ctx, n, Error.from_status(@unavailable, message))

        {:error, %GRPC.RPCError{status: status, message: message}} ->
          {:error, Error.from_status(status, message)}

        # Transport failures (connection refused or reset) surface as other terms.
        {:error, reason} ->
          ChannelPool.report_unavailable(pool, channel)
          retry(pool, rpc, request, ctx, n, Error.from_status(@unavailable, inspect(reason)))
      end
    else
      :deadline ->
        {:error, Error.from_status(@deadline_exceeded, "deadline passed before the call")}

      {:error, :no_channel} ->
        retry(pool, rpc, request, ctx, n, Error.from_status(@unavailable, "no connected channel"))
    end
  end

  defp retry(pool, rpc, request, ctx, n, error) do
    delay = Backoff.delay(ctx.backoff, n)

    if n + 1 < ctx.max_attempts and now() + delay < ctx.deadline do
      Process.sleep(delay)
      attempt(pool, rpc, request, ctx, n + 1)
    else
      {:error, error}
    end
  end

  defp outcome({:ok, _}), do: %{result: :ok}
  defp outcome({:error, %Error{code: code}}), do: %{result: :error, code: code}

  defp request_id, do: Base.encode16(:crypto.strong_rand_bytes(8), case: :lower)

  defp now, do: System.monotonic_time(:millisecond)
end
