defmodule UroReco.Sidecar do
  @moduledoc """
  Runs one reco-sidecar OS process under OTP supervision.

  The process is started through a `Port` (`python -m reco_sidecar serve --port 0
  --exit-on-stdin-eof …`). `start_link/1` returns at once; the sidecar boots in
  the background and `await_ready/2` waits for its ready line (see
  `UroReco.Sidecar.Ready`).

  When the OS process dies, it is started again after an exponential backoff;
  subscribers get `{UroReco.Sidecar, pid, :down}` and, once it serves again,
  `{UroReco.Sidecar, pid, {:ready, ready}}` with its new addresses. A clean exit
  (status 0, e.g. after `--idle-shutdown-after`) or a configuration error
  (status 2) stops this server instead; use `restart: :transient` in the child
  spec when the sidecar may shut itself down when idle.

  Stopping the server closes the port (the sidecar sees EOF on stdin and
  drains), sends SIGTERM as well, waits for the process to exit and kills it
  after `:shutdown_timeout`.

  ## Options

    * `:model_root`, `:model` (required) - where the model versions are and which to serve
    * `:workers` - worker processes (default 1)
    * `:python` - interpreter name or path (default `"python3"`)
    * `:idle_shutdown_after` - ms without RPCs after which the sidecar exits by itself
    * `:grace` - ms the sidecar drains in-flight RPCs on shutdown
    * `:extra_args` - more command-line arguments
    * `:env` - `[{"NAME", "value"}]` for the OS process
    * `:stderr` - `:inherit` (default) or `{:file, path}` to append the sidecar's logs there
    * `:boot_timeout` - ms to wait for the ready line before killing and retrying (default 60_000)
    * `:backoff` - `{min_ms, max_ms}` between restarts (default `{500, 30_000}`)
    * `:shutdown_timeout` - ms to wait for the exit on stop before SIGKILL (default 10_000)
    * `:notify` - a pid subscribed from the start (see `subscribe/1`)
    * `:name` - a `GenServer` name
  """

  use GenServer, shutdown: 15_000

  require Logger

  alias UroReco.Backoff
  alias UroReco.Sidecar.{Command, OSProcess, Ready}

  @config_error_status 2

  defstruct [
    :opts,
    :port,
    :os_pid,
    :ready,
    :boot_timer,
    :backoff,
    attempt: 0,
    buffer: "",
    waiters: [],
    subscribers: %{}
  ]

  @type server :: GenServer.server()

  @doc "Starts the server; the sidecar boots asynchronously."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    {name, opts} = Keyword.pop(opts, :name)
    GenServer.start_link(__MODULE__, opts, if(name, do: [name: name], else: []))
  end

  @doc """
  Waits until the sidecar serves and returns its ready line. Restarts in between
  are waited out; a sidecar that exits for good returns its exit status.
  """
  @spec await_ready(server(), timeout()) ::
          {:ok, Ready.t()} | {:error, :timeout | {:exit_status, 0 | 2}}
  def await_ready(server, timeout \\ 60_000) do
    GenServer.call(server, :await_ready, timeout)
  catch
    :exit, {:timeout, _} -> {:error, :timeout}
  end

  @doc "The ready line of the running sidecar, without waiting."
  @spec ready(server()) :: {:ok, Ready.t()} | {:error, :not_ready}
  def ready(server), do: GenServer.call(server, :ready)

  @doc "The OS pid of the current sidecar process, if one is running."
  @spec os_pid(server()) :: pos_integer() | nil
  def os_pid(server), do: GenServer.call(server, :os_pid)

  @doc """
  Sends `{UroReco.Sidecar, server_pid, {:ready, Ready.t()}}` and
  `{UroReco.Sidecar, server_pid, :down}` to the caller from now on. If the
  sidecar already serves, the ready message is sent at once.
  """
  @spec subscribe(server()) :: :ok
  def subscribe(server), do: GenServer.call(server, {:subscribe, self()})

  @doc "Stops the server and its OS process."
  @spec stop(server(), timeout()) :: :ok
  def stop(server, timeout \\ :infinity), do: GenServer.stop(server, :normal, timeout)

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    # Fail fast on bad options instead of on every restart.
    Command.build(opts)
    {min, max} = Keyword.get(opts, :backoff, {500, 30_000})
    state = %__MODULE__{opts: opts, backoff: Backoff.new(min, max)}

    state =
      case Keyword.get(opts, :notify) do
        nil -> state
        pid -> add_subscriber(state, pid)
      end

    {:ok, state, {:continue, :boot}}
  end

  @impl true
  def handle_continue(:boot, state), do: {:noreply, boot(state)}

  @impl true
  def handle_call(:await_ready, _from, %{ready: %Ready{} = ready} = state),
    do: {:reply, {:ok, ready}, state}

  def handle_call(:await_ready, from, state),
    do: {:noreply, %{state | waiters: [from | state.waiters]}}

  def handle_call(:ready, _from, %{ready: nil} = state), do: {:reply, {:error, :not_ready}, state}
  def handle_call(:ready, _from, state), do: {:reply, {:ok, state.ready}, state}
  def handle_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}

  def handle_call({:subscribe, pid}, _from, state) do
    if state.ready, do: send(pid, {__MODULE__, self(), {:ready, state.ready}})
    {:reply, :ok, add_subscriber(state, pid)}
  end

  @impl true
  def handle_info({port, {:data, {:noeol, chunk}}}, %{port: port} = state),
    do: {:noreply, %{state | buffer: state.buffer <> chunk}}

  def handle_info({port, {:data, {:eol, chunk}}}, %{port: port} = state) do
    {:noreply, handle_line(%{state | buffer: ""}, state.buffer <> chunk)}
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    state = exited(state)

    cond do
      status == 0 ->
        Logger.info("reco sidecar exited cleanly, stopping")
        {:stop, :normal, fail_waiters(state, status)}

      status == @config_error_status ->
        Logger.error("reco sidecar rejected its configuration (exit status 2), not restarting")
        {:stop, {:shutdown, {:sidecar_exit, status}}, fail_waiters(state, status)}

      true ->
        Logger.warning("reco sidecar exited with status #{status}, restarting")
        {:noreply, schedule_restart(state)}
    end
  end

  def handle_info({:boot_timeout, timer}, %{boot_timer: timer} = state) do
    Logger.warning("reco sidecar sent no ready line in time, restarting it")
    {:noreply, state |> stop_process() |> exited() |> schedule_restart()}
  end

  def handle_info(:restart, %{port: nil} = state), do: {:noreply, boot(state)}

  def handle_info({:DOWN, _ref, :process, pid, _reason}, state),
    do: {:noreply, %{state | subscribers: Map.delete(state.subscribers, pid)}}

  # The port's own exit signal (we trap exits) and stale timers.
  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state), do: stop_process(state)

  defp boot(state) do
    {executable, args} = Command.build(state.opts)

    port =
      Port.open({:spawn_executable, executable}, [
        :binary,
        :exit_status,
        :use_stdio,
        {:line, 64 * 1024},
        {:args, args},
        {:env, env(state.opts)}
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    timer = make_ref()

    Process.send_after(
      self(),
      {:boot_timeout, timer},
      Keyword.get(state.opts, :boot_timeout, 60_000)
    )

    %{state | port: port, os_pid: os_pid, boot_timer: timer, buffer: ""}
  end

  defp env(opts) do
    for {name, value} <- Keyword.get(opts, :env, []),
        do: {String.to_charlist(name), String.to_charlist(value)}
  end

  # Only the first ready line matters; the sidecar logs to stderr.
  defp handle_line(%{ready: %Ready{}} = state, _line), do: state

  defp handle_line(state, line) do
    case Ready.parse(line) do
      {:ok, ready} ->
        serving(state, ready)

      {:error, reason} ->
        Logger.debug("reco sidecar stdout (#{inspect(reason)}): #{line}")
        state
    end
  end

  defp serving(state, ready) do
    Enum.each(state.waiters, &GenServer.reply(&1, {:ok, ready}))
    broadcast(state, {:ready, ready})
    %{state | ready: ready, boot_timer: nil, attempt: 0, waiters: []}
  end

  defp fail_waiters(state, status) do
    Enum.each(state.waiters, &GenServer.reply(&1, {:error, {:exit_status, status}}))
    %{state | waiters: []}
  end

  defp exited(state) do
    if state.ready, do: broadcast(state, :down)
    %{state | port: nil, os_pid: nil, ready: nil, boot_timer: nil}
  end

  defp schedule_restart(state) do
    delay = Backoff.delay(state.backoff, state.attempt)
    Process.send_after(self(), :restart, delay)
    %{state | attempt: state.attempt + 1}
  end

  defp stop_process(%{port: nil} = state), do: state

  defp stop_process(%{port: port, os_pid: os_pid} = state) do
    # Closing stdin is the sidecar's signal to drain and exit; SIGTERM is the same
    # request again for a sidecar that does not read stdin at that moment.
    Port.close(port)
    OSProcess.terminate(os_pid, Keyword.get(state.opts, :shutdown_timeout, 10_000))
    %{state | port: nil}
  end

  defp add_subscriber(state, pid) do
    if Map.has_key?(state.subscribers, pid) do
      state
    else
      %{state | subscribers: Map.put(state.subscribers, pid, Process.monitor(pid))}
    end
  end

  defp broadcast(state, event) do
    for pid <- Map.keys(state.subscribers), do: send(pid, {__MODULE__, self(), event})
    :ok
  end
end
