defmodule UroReco.ChannelPool do
  @moduledoc """
  One gRPC channel per sidecar worker, handed out round robin.

  One HTTP/2 connection reaches one sidecar worker process, so a client that
  wants every core connects to each worker's own address and spreads its calls.
  `pick/1` reads an ETS table and an atomic counter: no process sits in the call
  path.

  Each worker's channel carries a `grpc.health.v1.Health/Watch` stream (one
  long-lived RPC per channel; it counts against the sidecar's
  `--max-concurrent-rpcs`). A channel is handed out only while its worker says
  `SERVING`. `NOT_SERVING` (a draining worker) takes it out of rotation and
  ends the watch at once, so the drain never waits for it; like a stream that
  ends (the worker died, its connection closed) the channel is then dropped and
  connected again with backoff. A channel a
  caller reports with `report_unavailable/2` is taken out until a
  `Health/Check` on it answers `SERVING`. Connecting happens in a separate
  process per worker, so a slow or failing connect never blocks the pool.

  Where the addresses come from (one of):

    * `sidecar: server` - a `UroReco.Sidecar`: its ready line's `worker_addresses`,
      followed across restarts (new ports) through `UroReco.Sidecar.subscribe/1`
    * `discover: "host:port"` - the shared address of a running sidecar; the
      workers are read from `GetModelStatus`, and read again when a worker
      cannot be reached
    * `addresses: ["host:port", ...]` - fixed worker addresses

  Other options: `:name` (required; also names the ETS table), `:connect_opts`
  for `GRPC.Stub.connect/2` (default `[adapter: GRPC.Client.Adapters.Gun]`),
  `:backoff` `{min_ms, max_ms}` between reconnects (default `{100, 5_000}`).
  """

  use GenServer

  require Logger

  alias Reco.V1.{GetModelStatusRequest, Recommender.Stub}
  alias UroReco.{Backoff, Sidecar}
  alias UroReco.ChannelPool.Watcher
  alias UroReco.Telemetry

  @type pool :: atom()
  @type slot_status :: :connecting | :serving | :not_serving | :suspect

  @check_timeout 1_000
  @retire_grace 20_000

  @doc false
  def child_spec(opts) do
    %{id: {__MODULE__, Keyword.fetch!(opts, :name)}, start: {__MODULE__, :start_link, [opts]}}
  end

  @doc "Starts the pool; channels connect in the background."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    opts = UroReco.Options.validate!(:channel_pool, opts)

    case Enum.filter([:sidecar, :discover, :addresses], &Keyword.has_key?(opts, &1)) do
      [_one] ->
        GenServer.start_link(__MODULE__, opts, name: opts[:name])

      given ->
        raise ArgumentError,
              "channel_pool needs exactly one of :sidecar, :discover, :addresses, got: " <>
                inspect(given)
    end
  end

  @doc "The next channel whose worker is serving, round robin."
  @spec pick(pool()) :: {:ok, GRPC.Channel.t()} | {:error, :no_channel}
  def pick(pool) do
    with {:ok, channel, _watcher} <- pick_watched(pool), do: {:ok, channel}
  end

  @doc false
  # The channel and the process watching its health: that process exits when the
  # channel's connection is gone, which a caller in the middle of a call needs to
  # know (gun holds requests made on a dropped connection and never answers them).
  @spec pick_watched(pool()) :: {:ok, GRPC.Channel.t(), pid()} | {:error, :no_channel}
  def pick_watched(pool) do
    [{:slots, slots, counter}] = :ets.lookup(pool, :slots)
    size = tuple_size(slots)

    if size == 0 do
      {:error, :no_channel}
    else
      start = :atomics.add_get(counter, 1, 1)
      first_connected(slots, start, size, size)
    end
  end

  @doc "Tells the pool that a call on `channel` found it unavailable."
  @spec report_unavailable(pool(), GRPC.Channel.t()) :: :ok
  def report_unavailable(pool, channel), do: GenServer.cast(pool, {:unavailable, channel})

  @doc "The worker addresses the pool connects to."
  @spec addresses(pool()) :: [String.t()]
  def addresses(pool), do: GenServer.call(pool, :addresses)

  @doc """
  Each worker address with its channel's state: `:serving` (handed out),
  `:not_serving` (the worker said so), `:suspect` (a caller reported it, being
  checked) or `:connecting`.
  """
  @spec status(pool()) :: [{String.t(), slot_status()}]
  def status(pool), do: GenServer.call(pool, :status)

  defp first_connected(_slots, _start, _size, 0), do: {:error, :no_channel}

  defp first_connected(slots, start, size, left) do
    case elem(slots, rem(start, size)) do
      nil -> first_connected(slots, start + 1, size, left - 1)
      {channel, watcher} -> {:ok, channel, watcher}
    end
  end

  @impl true
  def init(opts) do
    # Every process the pool starts (watchers, checks, discovery, disconnects)
    # runs under this task supervisor, linked to the pool: they all go with it.
    # The pool monitors them, and their results come back as messages.
    Process.flag(:trap_exit, true)
    {:ok, tasks} = Task.Supervisor.start_link()

    table =
      :ets.new(Keyword.fetch!(opts, :name), [:named_table, :protected, read_concurrency: true])

    :ets.insert(table, {:slots, {}, :atomics.new(1, signed: false)})
    {min, max} = Keyword.fetch!(opts, :backoff)

    state = %{
      name: Keyword.fetch!(opts, :name),
      tasks: tasks,
      table: table,
      connect_opts: Keyword.fetch!(opts, :connect_opts),
      backoff: Backoff.new(min, max),
      slots: %{},
      discover: nil
    }

    {:ok, state, {:continue, {:source, opts}}}
  end

  @impl true
  def handle_continue({:source, opts}, state) do
    cond do
      sidecar = opts[:sidecar] ->
        :ok = Sidecar.subscribe(sidecar)
        {:noreply, state}

      address = opts[:discover] ->
        {:noreply, discover(%{state | discover: %{address: address, pid: nil, attempt: 0}})}

      true ->
        {:noreply, use_addresses(state, Keyword.fetch!(opts, :addresses))}
    end
  end

  @impl true
  def handle_call(:addresses, _from, state) do
    {:reply, state.slots |> Enum.sort() |> Enum.map(fn {_, slot} -> slot.address end), state}
  end

  def handle_call(:status, _from, state) do
    reply =
      state.slots |> Enum.sort() |> Enum.map(fn {_, slot} -> {slot.address, slot.status} end)

    {:reply, reply, state}
  end

  @impl true
  def handle_cast({:unavailable, %GRPC.Channel{ref: ref}}, state) do
    case find_slot(state, &(&1.status == :serving and channel_ref(&1) == ref)) do
      {index, slot} ->
        check(state, slot.channel, 0)
        {:noreply, put_slot(state, index, %{slot | status: :suspect})}

      nil ->
        {:noreply, state}
    end
  end

  @impl true
  def handle_info({Sidecar, _pid, {:ready, ready}}, state) do
    {:noreply, use_addresses(state, ready.worker_addresses)}
  end

  def handle_info({Sidecar, _pid, :down}, state), do: {:noreply, use_addresses(state, [])}

  def handle_info({Watcher, pid, {:connected, channel}}, state) do
    case find_slot(state, &(&1.watcher == pid)) do
      {index, slot} ->
        {:noreply, put_slot(state, index, %{slot | channel: channel})}

      nil ->
        # A watcher retired while it was connecting.
        disconnect_async(state, channel)
        {:noreply, state}
    end
  end

  def handle_info({Watcher, pid, {:health, health}}, state) do
    case find_slot(state, &(&1.watcher == pid)) do
      {index, %{status: old} = slot} ->
        status = if health == :SERVING, do: :serving, else: :not_serving

        if status == :not_serving and old != :not_serving,
          do: Logger.warning("reco worker #{slot.address} is #{health}: out of rotation")

        attempt = if status == :serving, do: 0, else: slot.attempt
        {:noreply, put_slot(state, index, %{slot | status: status, attempt: attempt})}

      nil ->
        {:noreply, state}
    end
  end

  def handle_info({:checked, ref, health, attempt}, state) do
    case find_slot(state, &(&1.status == :suspect and channel_ref(&1) == ref)) do
      {index, slot} when health == :SERVING ->
        {:noreply, put_slot(state, index, %{slot | status: :serving})}

      {_index, slot} ->
        check(state, slot.channel, attempt + 1, Backoff.delay(state.backoff, attempt))
        {:noreply, state}

      nil ->
        {:noreply, state}
    end
  end

  def handle_info({:connect, index, generation}, state) do
    case state.slots do
      %{^index => %{generation: ^generation, watcher: nil} = slot} ->
        {:noreply, put_slot(state, index, start_watcher(slot, state))}

      _ ->
        {:noreply, state}
    end
  end

  # Discovery's result.
  def handle_info({ref, result}, %{discover: %{pid: %Task{ref: ref}}} = state)
      when is_reference(ref) do
    Process.demonitor(ref, [:flush])
    {:noreply, discovered(state, result)}
  end

  def handle_info(
        {:DOWN, ref, :process, _pid, reason},
        %{discover: %{pid: %Task{ref: ref}}} = state
      ) do
    {:noreply, discovered(state, {:error, {:crashed, reason}})}
  end

  def handle_info({:DOWN, _ref, :process, pid, reason}, state) do
    case find_slot(state, &(&1.watcher == pid)) do
      {index, slot} -> {:noreply, watcher_down(state, index, slot, reason)}
      # A retired watcher.
      nil -> {:noreply, state}
    end
  end

  def handle_info({:EXIT, tasks, reason}, %{tasks: tasks} = state), do: {:stop, reason, state}

  def handle_info(:discover, state), do: {:noreply, discover(state)}

  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    Enum.each(state.slots, fn {_, slot} ->
      if slot.watcher, do: Process.exit(slot.watcher, :kill)
      if slot.channel, do: disconnect(slot.channel)
    end)
  end

  defp watcher_down(state, index, slot, reason) do
    if slot.status != :connecting or slot.attempt == 0 do
      Logger.warning("reco channel to #{slot.address} is down: #{inspect(reason)}")
    end

    if slot.channel, do: disconnect_async(state, slot.channel)
    state = if state.discover && slot.channel == nil, do: discover(state), else: state

    generation = slot.generation + 1

    Process.send_after(
      self(),
      {:connect, index, generation},
      Backoff.delay(state.backoff, slot.attempt)
    )

    slot = %{
      slot
      | watcher: nil,
        channel: nil,
        status: :connecting,
        attempt: slot.attempt + 1,
        generation: generation
    }

    put_slot(state, index, slot)
  end

  defp use_addresses(state, addresses) do
    current = state.slots |> Enum.sort() |> Enum.map(fn {_, slot} -> slot.address end)

    if current == addresses do
      state
    else
      Enum.each(state.slots, fn {_, slot} ->
        retire(state, slot)
        Telemetry.pool_health(state.name, slot.address, slot.status, nil)
      end)

      Enum.each(addresses, &Telemetry.pool_health(state.name, &1, nil, :connecting))

      slots =
        for {address, index} <- Enum.with_index(addresses), into: %{} do
          slot = %{
            address: address,
            watcher: nil,
            channel: nil,
            status: :connecting,
            attempt: 0,
            generation: 0
          }

          {index, start_watcher(slot, state)}
        end

      publish(%{state | slots: slots})
    end
  end

  defp start_watcher(slot, state) do
    watcher = Watcher.start(state.tasks, slot.address, state.connect_opts)
    Process.monitor(watcher)
    %{slot | watcher: watcher, status: :connecting}
  end

  # An old watcher is left to end on its own: disconnecting its channel ends its
  # stream, once gun's closing timeout (15 s) has passed. Killing it earlier would
  # leave grpc's response process for the stream behind, and killing it while it
  # connects would leak the connection it is opening; it is killed only if it
  # is still there after that.
  defp retire(state, slot) do
    if slot.channel, do: disconnect_async(state, slot.channel)

    if watcher = slot.watcher do
      run_task(state, fn ->
        monitor = Process.monitor(watcher)

        receive do
          {:DOWN, ^monitor, :process, _, _} -> :ok
        after
          @retire_grace -> Process.exit(watcher, :kill)
        end
      end)
    end
  end

  defp check(state, channel, attempt, delay \\ 0) do
    pool = self()

    run_task(state, fn ->
      Process.sleep(delay)
      send(pool, {:checked, channel.ref, Watcher.check(channel, @check_timeout), attempt})
    end)
  end

  defp put_slot(state, index, slot) do
    case state.slots do
      %{^index => %{status: old}} when old != slot.status ->
        Telemetry.pool_health(state.name, slot.address, old, slot.status)

      %{^index => _} ->
        :ok

      _new ->
        Telemetry.pool_health(state.name, slot.address, nil, slot.status)
    end

    publish(%{state | slots: Map.put(state.slots, index, slot)})
  end

  defp run_task(state, fun) do
    {:ok, _pid} = Task.Supervisor.start_child(state.tasks, fun)
    :ok
  end

  defp find_slot(state, fun), do: Enum.find(state.slots, fn {_, slot} -> fun.(slot) end)

  defp channel_ref(%{channel: %GRPC.Channel{ref: ref}}), do: ref
  defp channel_ref(_slot), do: nil

  defp disconnect_async(state, channel) do
    run_task(state, fn -> disconnect(channel) end)
  end

  defp disconnect(channel) do
    GRPC.Stub.disconnect(channel)
    :ok
  catch
    # Already gone.
    :exit, _ -> :ok
  end

  defp publish(state) do
    [{:slots, _, counter}] = :ets.lookup(state.table, :slots)

    slots =
      state.slots
      |> Enum.sort()
      |> Enum.map(fn {_, slot} ->
        if slot.status == :serving, do: {slot.channel, slot.watcher}
      end)
      |> List.to_tuple()

    :ets.insert(state.table, {:slots, slots, counter})
    state
  end

  # Discovery runs in a task (it connects, which can block for seconds); its
  # result comes back as the task's reply.
  defp discover(%{discover: %{pid: %Task{}}} = state), do: state

  defp discover(%{discover: discover, connect_opts: connect_opts} = state) do
    task =
      Task.Supervisor.async_nolink(state.tasks, fn ->
        read_workers(discover.address, connect_opts)
      end)

    %{state | discover: %{discover | pid: task}}
  end

  defp discovered(state, {:ok, addresses}) do
    state = %{state | discover: %{state.discover | pid: nil, attempt: 0}}
    use_addresses(state, addresses)
  end

  defp discovered(%{discover: discover} = state, {:error, reason}) do
    Logger.warning("reco discovery at #{discover.address} failed: #{inspect(reason)}")
    Process.send_after(self(), :discover, Backoff.delay(state.backoff, discover.attempt))
    %{state | discover: %{discover | pid: nil, attempt: discover.attempt + 1}}
  end

  defp read_workers(address, connect_opts) do
    with {:ok, channel} <- GRPC.Stub.connect(address, connect_opts) do
      result = Stub.get_model_status(channel, %GetModelStatusRequest{}, timeout: 10_000)
      disconnect(channel)

      with {:ok, status} <- result do
        {:ok, Enum.map(status.workers, & &1.address)}
      end
    end
  end
end
