defmodule UroReco.SidecarPool do
  @moduledoc """
  An elastic pool of `UroReco.Sidecar`s, with FLAME's knobs.

  `checkout/2` hands out a ready sidecar, round robin among those below
  `:max_concurrency` checkouts. When none has room, the pool boots another one
  (up to `:max`) and the caller waits for it. Sidecars above `:min` that have had
  no checkout for `:idle_shutdown_after` are stopped. A checkout ends with
  `checkin/2`, or when the caller exits.

      children = [
        {UroReco.SidecarPool,
         name: Uro.RecoPool, min: 1, max: 4, idle_shutdown_after: :timer.minutes(5),
         sidecar: [model_root: "/srv/models", model: "posts", workers: 2]}
      ]

      UroReco.SidecarPool.with_sidecar(Uro.RecoPool, fn ready ->
        # ready.worker_addresses: connect and call
      end)

  ## Options

    * `:sidecar` (required) - options for each `UroReco.Sidecar`
    * `:min` - sidecars kept running (default 0)
    * `:max` - most sidecars at once (default 1)
    * `:max_concurrency` - checkouts one sidecar takes at once (default 100)
    * `:idle_shutdown_after` - ms (default 30_000)
    * `:boot_timeout` - ms a sidecar may take to boot, also the default checkout timeout (default 60_000)
    * `:name` - a `GenServer` name
  """

  use GenServer, shutdown: 30_000

  alias UroReco.Sidecar
  alias UroReco.Sidecar.Ready

  defstruct [
    :sidecar_opts,
    :min,
    :max,
    :max_concurrency,
    :idle_shutdown_after,
    :boot_timeout,
    sidecars: %{},
    stopping: MapSet.new(),
    checkouts: %{},
    waiting: :queue.new(),
    next: 0
  ]

  @type pool :: GenServer.server()

  @doc "Starts the pool and its first `:min` sidecars."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    {name, opts} = Keyword.pop(opts, :name)
    GenServer.start_link(__MODULE__, opts, if(name, do: [name: name], else: []))
  end

  @doc """
  Checks out a ready sidecar. Waits up to `timeout` ms (default: the pool's
  `:boot_timeout`) when every sidecar is busy or still booting.
  """
  @spec checkout(pool(), timeout() | nil) :: {:ok, reference(), Ready.t()} | {:error, :timeout}
  def checkout(pool, timeout \\ nil) do
    GenServer.call(pool, {:checkout, timeout}, :infinity)
  end

  @doc "Ends a checkout."
  @spec checkin(pool(), reference()) :: :ok
  def checkin(pool, ref), do: GenServer.cast(pool, {:checkin, ref})

  @doc "Runs `fun` with a checked-out sidecar's ready line and checks it in afterwards."
  @spec with_sidecar(pool(), (Ready.t() -> result), timeout() | nil) ::
          result | {:error, :timeout}
        when result: term()
  def with_sidecar(pool, fun, timeout \\ nil) when is_function(fun, 1) do
    with {:ok, ref, ready} <- checkout(pool, timeout) do
      try do
        fun.(ready)
      after
        checkin(pool, ref)
      end
    end
  end

  @doc "A snapshot for monitoring: one entry per sidecar."
  @spec sidecars(pool()) :: [%{pid: pid(), ready: Ready.t() | nil, load: non_neg_integer()}]
  def sidecars(pool), do: GenServer.call(pool, :sidecars)

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)

    state = %__MODULE__{
      sidecar_opts: Keyword.fetch!(opts, :sidecar),
      min: Keyword.get(opts, :min, 0),
      max: Keyword.get(opts, :max, 1),
      max_concurrency: Keyword.get(opts, :max_concurrency, 100),
      idle_shutdown_after: Keyword.get(opts, :idle_shutdown_after, 30_000),
      boot_timeout: Keyword.get(opts, :boot_timeout, 60_000)
    }

    unless state.min >= 0 and state.max >= max(state.min, 1) do
      raise ArgumentError, "expected 0 <= min <= max and max >= 1, got: #{inspect(opts)}"
    end

    state = Enum.reduce(1..state.min//1, state, fn _, acc -> start_sidecar(acc) end)
    schedule_idle_check(state)
    {:ok, state}
  end

  @impl true
  def handle_call({:checkout, timeout}, {caller, _} = from, state) do
    case pick(state) do
      {:ok, pid, state} ->
        {ref, state} = assign(state, pid, caller)
        {:reply, {:ok, ref, state.sidecars[pid].ready}, state}

      :none ->
        state = %{
          state
          | waiting: :queue.in({from, deadline(timeout || state.boot_timeout)}, state.waiting)
        }

        {:noreply, maybe_grow(state)}
    end
  end

  def handle_call(:sidecars, _from, state) do
    snapshot = for {pid, s} <- state.sidecars, do: %{pid: pid, ready: s.ready, load: s.load}
    {:reply, snapshot, state}
  end

  @impl true
  def handle_cast({:checkin, ref}, state), do: {:noreply, release(state, ref)}

  @impl true
  def handle_info({Sidecar, pid, {:ready, ready}}, state) do
    {:noreply, state |> update_sidecar(pid, &%{&1 | ready: ready}) |> serve_waiting()}
  end

  def handle_info({Sidecar, pid, :down}, state) do
    {:noreply, update_sidecar(state, pid, &%{&1 | ready: nil})}
  end

  def handle_info({:DOWN, ref, :process, _caller, _reason}, state) do
    {:noreply, release(state, ref)}
  end

  # A configuration the sidecar rejects will not heal: booting more would only loop.
  def handle_info({:EXIT, pid, {:shutdown, {:sidecar_exit, _}} = reason}, state),
    do: {:stop, reason, %{state | sidecars: Map.delete(state.sidecars, pid)}}

  def handle_info({:EXIT, pid, _reason}, %{sidecars: sidecars} = state)
      when is_map_key(sidecars, pid) do
    state = %{state | sidecars: Map.delete(sidecars, pid)}
    state = if map_size(state.sidecars) < state.min, do: start_sidecar(state), else: state
    {:noreply, maybe_grow(state)}
  end

  def handle_info({:EXIT, pid, _reason}, state) do
    {:noreply, %{state | stopping: MapSet.delete(state.stopping, pid)}}
  end

  def handle_info(:expire_waiting, state), do: {:noreply, expire_waiting(state)}

  def handle_info(:idle_check, state) do
    schedule_idle_check(state)
    {:noreply, stop_idle(state)}
  end

  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    pids = Map.keys(state.sidecars) ++ MapSet.to_list(state.stopping)
    Enum.each(pids, &Process.exit(&1, :shutdown))

    for pid <- pids do
      receive do
        {:EXIT, ^pid, _} -> :ok
      after
        20_000 -> Process.exit(pid, :kill)
      end
    end

    :ok
  end

  defp start_sidecar(state) do
    opts = Keyword.merge(state.sidecar_opts, notify: self(), boot_timeout: state.boot_timeout)
    {:ok, pid} = Sidecar.start_link(opts)
    entry = %{ready: nil, load: 0, idle_since: now()}
    %{state | sidecars: Map.put(state.sidecars, pid, entry)}
  end

  defp pick(state) do
    available =
      for {pid, %{ready: %Ready{}, load: load}} <- state.sidecars,
          load < state.max_concurrency,
          do: pid

    case Enum.sort(available) do
      [] -> :none
      pids -> {:ok, Enum.at(pids, rem(state.next, length(pids))), %{state | next: state.next + 1}}
    end
  end

  defp assign(state, pid, caller) do
    ref = Process.monitor(caller)
    state = update_sidecar(state, pid, &%{&1 | load: &1.load + 1})
    {ref, %{state | checkouts: Map.put(state.checkouts, ref, pid)}}
  end

  defp release(state, ref) do
    case Map.pop(state.checkouts, ref) do
      {nil, _} ->
        state

      {pid, checkouts} ->
        Process.demonitor(ref, [:flush])

        %{state | checkouts: checkouts}
        |> update_sidecar(pid, &%{&1 | load: &1.load - 1, idle_since: now()})
        |> serve_waiting()
    end
  end

  defp serve_waiting(state) do
    case :queue.out(state.waiting) do
      {:empty, _} ->
        state

      {{:value, {{caller, _} = from, _deadline}}, rest} ->
        case pick(%{state | waiting: rest}) do
          {:ok, pid, state} ->
            {ref, state} = assign(state, pid, caller)
            GenServer.reply(from, {:ok, ref, state.sidecars[pid].ready})
            serve_waiting(state)

          :none ->
            state
        end
    end
  end

  defp expire_waiting(state) do
    now = now()

    {expired, waiting} =
      state.waiting
      |> :queue.to_list()
      |> Enum.split_with(fn {_, deadline} -> deadline <= now end)

    for {from, _} <- expired, do: GenServer.reply(from, {:error, :timeout})
    %{state | waiting: :queue.from_list(waiting)}
  end

  # Boot one more sidecar when the waiting callers exceed what the booting ones will take.
  defp maybe_grow(state) do
    booting = Enum.count(state.sidecars, fn {_, s} -> s.ready == nil end)
    waiting = :queue.len(state.waiting)

    if waiting > booting * state.max_concurrency and map_size(state.sidecars) < state.max do
      start_sidecar(state)
    else
      state
    end
  end

  defp stop_idle(state) do
    cutoff = now() - state.idle_shutdown_after

    idle =
      for {pid, %{ready: %Ready{}, load: 0, idle_since: since}} <- state.sidecars,
          since <= cutoff,
          do: pid

    idle
    |> Enum.sort()
    |> Enum.take(max(map_size(state.sidecars) - state.min, 0))
    |> Enum.reduce(state, fn pid, acc ->
      Process.exit(pid, :shutdown)
      %{acc | sidecars: Map.delete(acc.sidecars, pid), stopping: MapSet.put(acc.stopping, pid)}
    end)
  end

  defp update_sidecar(state, pid, fun) do
    case state.sidecars do
      %{^pid => entry} -> %{state | sidecars: Map.put(state.sidecars, pid, fun.(entry))}
      _ -> state
    end
  end

  defp schedule_idle_check(state) do
    Process.send_after(self(), :idle_check, max(div(state.idle_shutdown_after, 4), 50))
  end

  # Atoms sort after numbers, so an :infinity deadline never expires.
  defp deadline(:infinity), do: :infinity

  defp deadline(timeout) do
    Process.send_after(self(), :expire_waiting, timeout)
    now() + timeout
  end

  defp now, do: System.monotonic_time(:millisecond)
end
