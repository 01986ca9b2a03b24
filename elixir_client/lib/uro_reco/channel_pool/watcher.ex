defmodule UroReco.ChannelPool.Watcher do
  @moduledoc false
  # One process per sidecar worker address. It connects a channel, then holds a
  # grpc.health.v1.Health/Watch stream on it and reports every status to the
  # pool; it exits when the stream ends, which happens as soon as the worker's
  # connection closes (a killed or restarted sidecar), and on any status other
  # than SERVING (a draining worker), so that no stream holds up the drain. Connecting here rather than
  # in the pool matters: grpc 1.0's connect to a closed port blocks for 5 s.
  #
  # Why not monitor the channel: in grpc 1.0 `adapter_payload.conn_pid` is a
  # wrapper process that stays alive while gun retries a dead server, so a
  # monitor on it never fires.
  #
  # Messages to the pool: {__MODULE__, self(), {:connected, channel}} and
  # {__MODULE__, self(), {:health, status}} with status :SERVING, :NOT_SERVING, ...
  # The exit reason (seen by the pool's monitor) says why the watch ended; it
  # carries no result.

  alias UroReco.Health.V1.HealthCheckRequest
  alias UroReco.Health.V1.Health.Stub

  @doc "Starts a watcher for the calling pool under the pool's task supervisor."
  @spec start(Supervisor.supervisor(), String.t(), keyword()) :: pid()
  def start(tasks, address, connect_opts) do
    pool = self()
    {:ok, pid} = Task.Supervisor.start_child(tasks, fn -> run(pool, address, connect_opts) end)
    pid
  end

  @doc "One Health/Check on `channel`: the worker's status, or `:unreachable`."
  @spec check(GRPC.Channel.t(), timeout()) :: atom()
  def check(channel, timeout) do
    case Stub.check(channel, %HealthCheckRequest{service: ""}, timeout: timeout) do
      {:ok, %{status: status}} -> status
      {:error, _} -> :unreachable
    end
  catch
    # A channel whose connection process is gone exits instead of returning.
    :exit, _ -> :unreachable
  end

  defp run(pool, address, connect_opts) do
    case GRPC.Stub.connect(address, connect_opts) do
      {:ok, channel} ->
        # A pool that went away while we connected cannot disconnect this channel.
        if Process.alive?(pool) do
          send(pool, {__MODULE__, self(), {:connected, channel}})
          exit(watch(pool, channel))
        else
          GRPC.Stub.disconnect(channel)
          exit(:normal)
        end

      {:error, reason} ->
        exit({:shutdown, {:connect_failed, reason}})
    end
  end

  defp watch(pool, channel) do
    case Stub.watch(channel, %HealthCheckRequest{service: ""}) do
      {:ok, replies} ->
        Enum.reduce_while(replies, {:shutdown, :watch_ended}, fn
          {:ok, %{status: :SERVING}}, acc ->
            send(pool, {__MODULE__, self(), {:health, :SERVING}})
            {:cont, acc}

          # The sidecar says NOT_SERVING when a worker starts draining, for good:
          # a stream held open past that is one more call the drain would wait
          # for (the whole --grace). The watch ends here; the pool drops the
          # channel and reconnects with backoff, which finds the restarted worker
          # or keeps failing until the sidecar reports new addresses.
          {:ok, %{status: status}}, _acc ->
            send(pool, {__MODULE__, self(), {:health, status}})
            {:halt, {:shutdown, {:health, status}}}

          {:error, error}, _acc ->
            {:halt, {:shutdown, {:watch_failed, error}}}
        end)

      {:error, error} ->
        {:shutdown, {:watch_failed, error}}
    end
  catch
    :exit, reason -> {:shutdown, {:watch_failed, reason}}
  end
end
