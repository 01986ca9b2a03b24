defmodule UroReco.ChannelPool do
  @moduledoc """
  One gRPC channel per sidecar worker, handed out round robin.

  One HTTP/2 connection reaches one sidecar worker process, so a client that
  wants every core connects to each worker's own address and spreads its calls.
  `pick/1` reads an ETS table and an atomic counter: no process sits in the call
  path. A channel whose connection dies, or that a caller reports with
  `report_unavailable/2`, is taken out and connected again with backoff.

  Where the addresses come from (one of):

    * `sidecar: server` - a `UroReco.Sidecar`: its ready line's `worker_addresses`,
      followed across restarts (new ports) through `UroReco.Sidecar.subscribe/1`
    * `discover: "host:port"` - the shared address of a running sidecar; the
      workers are read from `GetModelStatus`
    * `addresses: ["host:port", ...]` - fixed worker addresses

  Other options: `:name` (required; also names the ETS table), `:connect_opts`
  for `GRPC.Stub.connect/2` (default `[adapter: GRPC.Client.Adapters.Gun]`),
  `:backoff` `{min_ms, max_ms}` between reconnects (default `{100, 5_000}`).
  """

  use GenServer

  require Logger

  alias Reco.V1.{GetModelStatusRequest, Recommender.Stub}
  alias UroReco.{Backoff, Sidecar}

  @type pool :: atom()

  @doc false
  def child_spec(opts) do
    %{id: {__MODULE__, Keyword.fetch!(opts, :name)}, start: {__MODULE__, :start_link, [opts]}}
  end

  @doc "Starts the pool; channels connect in the background."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    name = Keyword.fetch!(opts, :name)
    GenServer.start_link(__MODULE__, opts, name: name)
  end

  @doc "The next connected channel, round robin."
  @spec pick(pool()) :: {:ok, GRPC.Channel.t()} | {:error, :no_channel}
  def pick(pool) do
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

  defp first_connected(_slots, _start, _size, 0), do: {:error, :no_channel}

  defp first_connected(slots, start, size, left) do
    case elem(slots, rem(start, size)) do
      nil -> first_connected(slots, start + 1, size, left - 1)
      channel -> {:ok, channel}
    end
  end

  @impl true
  def init(opts) do
    table =
      :ets.new(Keyword.fetch!(opts, :name), [:named_table, :protected, read_concurrency: true])

    :ets.insert(table, {:slots, {}, :atomics.new(1, signed: false)})
    {min, max} = Keyword.get(opts, :backoff, {100, 5_000})

    state = %{
      table: table,
      connect_opts: Keyword.get(opts, :connect_opts, adapter: GRPC.Client.Adapters.Gun),
      backoff: Backoff.new(min, max),
      slots: %{}
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
        {:ok, addresses} = discover(address, state.connect_opts)
        {:noreply, use_addresses(state, addresses)}

      true ->
        {:noreply, use_addresses(state, Keyword.fetch!(opts, :addresses))}
    end
  end

  @impl true
  def handle_call(:addresses, _from, state) do
    {:reply, state.slots |> Enum.sort() |> Enum.map(fn {_, slot} -> slot.address end), state}
  end

  @impl true
  def handle_cast({:unavailable, %GRPC.Channel{ref: ref}}, state) do
    case Enum.find(state.slots, fn {_, slot} -> slot.channel && slot.channel.ref == ref end) do
      {index, _} -> {:noreply, drop(state, index)}
      nil -> {:noreply, state}
    end
  end

  @impl true
  def handle_info({Sidecar, _pid, {:ready, ready}}, state) do
    {:noreply, use_addresses(state, ready.worker_addresses)}
  end

  def handle_info({Sidecar, _pid, :down}, state), do: {:noreply, use_addresses(state, [])}

  def handle_info({:connect, index, generation}, state) do
    case state.slots do
      %{^index => %{generation: ^generation, channel: nil}} -> {:noreply, connect(state, index)}
      _ -> {:noreply, state}
    end
  end

  def handle_info({:DOWN, monitor, :process, _pid, reason}, state) do
    case Enum.find(state.slots, fn {_, slot} -> slot.monitor == monitor end) do
      {index, slot} ->
        Logger.warning("reco channel to #{slot.address} went down: #{inspect(reason)}")
        {:noreply, drop(state, index)}

      nil ->
        {:noreply, state}
    end
  end

  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    Enum.each(state.slots, fn {_, slot} -> disconnect(slot) end)
  end

  defp use_addresses(state, addresses) do
    current = state.slots |> Enum.sort() |> Enum.map(fn {_, slot} -> slot.address end)

    if current == addresses do
      state
    else
      Enum.each(state.slots, fn {_, slot} -> disconnect(slot) end)

      slots =
        for {address, index} <- Enum.with_index(addresses), into: %{} do
          {index, %{address: address, channel: nil, monitor: nil, attempt: 0, generation: 0}}
        end

      state = publish(%{state | slots: slots})
      Enum.reduce(Map.keys(slots), state, &connect(&2, &1))
    end
  end

  defp connect(state, index) do
    slot = state.slots[index]

    case GRPC.Stub.connect(slot.address, state.connect_opts) do
      {:ok, channel} ->
        slot = %{slot | channel: channel, monitor: monitor(channel), attempt: 0}
        publish(%{state | slots: Map.put(state.slots, index, slot)})

      {:error, reason} ->
        Logger.warning("reco channel to #{slot.address} failed to connect: #{inspect(reason)}")
        schedule_connect(state, index)
    end
  end

  # Takes a channel out of rotation and connects it again after a backoff.
  defp drop(state, index) do
    disconnect(state.slots[index])
    slot = %{state.slots[index] | channel: nil, monitor: nil}
    state = publish(%{state | slots: Map.put(state.slots, index, slot)})
    schedule_connect(state, index)
  end

  defp schedule_connect(state, index) do
    slot = state.slots[index]
    generation = slot.generation + 1

    Process.send_after(
      self(),
      {:connect, index, generation},
      Backoff.delay(state.backoff, slot.attempt)
    )

    slot = %{slot | attempt: slot.attempt + 1, generation: generation}
    %{state | slots: Map.put(state.slots, index, slot)}
  end

  defp monitor(%GRPC.Channel{adapter_payload: %{conn_pid: pid}}) when is_pid(pid),
    do: Process.monitor(pid)

  defp monitor(_channel), do: nil

  defp disconnect(%{channel: nil}), do: :ok

  defp disconnect(%{channel: channel, monitor: monitor}) do
    if monitor, do: Process.demonitor(monitor, [:flush])
    GRPC.Stub.disconnect(channel)
    :ok
  end

  defp publish(state) do
    [{:slots, _, counter}] = :ets.lookup(state.table, :slots)

    slots =
      state.slots |> Enum.sort() |> Enum.map(fn {_, slot} -> slot.channel end) |> List.to_tuple()

    :ets.insert(state.table, {:slots, slots, counter})
    state
  end

  defp discover(address, connect_opts) do
    with {:ok, channel} <- GRPC.Stub.connect(address, connect_opts) do
      result = Stub.get_model_status(channel, %GetModelStatusRequest{}, timeout: 10_000)
      GRPC.Stub.disconnect(channel)

      with {:ok, status} <- result do
        {:ok, Enum.map(status.workers, & &1.address)}
      end
    end
  end
end
