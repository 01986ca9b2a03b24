defmodule UroReco.Feedback.Buffer do
  @moduledoc """
  Fire-and-forget feedback for callers that must never wait on the sidecar,
  such as a Phoenix controller recording a click:

      :ok | :dropped = UroReco.feedback_async(Uro.Reco.Channels, %{user_id: u, item_id: p, type: "click"})

  The caller checks one counter and sends one message; it never blocks, even
  when the sidecar is down. At most `:max_pending` events are held (queued or
  in flight); past that an event is dropped and counted (`stats/1`, and a
  `[:uro_reco, :feedback, :dropped]` event with `count: 1`) instead of
  growing the mailbox. Events go out in batches of up to `:batch_size` (default
  1,000) as soon as the previous batch is answered, or after `:flush_after` ms
  (default 200) for a partial one; one batch is in flight at a time. A batch the
  sidecar refuses for an input error (a bad event) is dropped and counted; one
  that fails otherwise (no serving channel, UNAVAILABLE, deadline) is tried
  again after a backoff, which its event ids make harmless.

  Started by `UroReco` (as `<name>.FeedbackBuffer`); options `:pool` (the
  channel pool), `:max_pending` (default 10,000), `:batch_size`, `:flush_after`,
  `:timeout` (per batch, default 5,000) and `:backoff` (`{min_ms, max_ms}`,
  default `{200, 5_000}`).
  """

  use GenServer

  require Logger

  alias UroReco.{Backoff, Feedback}

  @input_errors [:invalid_argument, :failed_precondition, :not_found, :out_of_range]

  @doc false
  def child_spec(opts) do
    %{id: {__MODULE__, Keyword.fetch!(opts, :pool)}, start: {__MODULE__, :start_link, [opts]}}
  end

  @doc "Starts the buffer for `opts[:pool]`."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    opts =
      Keyword.validate!(opts,
        pool: nil,
        max_pending: 10_000,
        batch_size: 1_000,
        flush_after: 200,
        timeout: 5_000,
        backoff: {200, 5_000}
      )

    pool = opts[:pool]

    for {key, ok?} <- [
          pool: is_atom(pool) and pool != nil,
          max_pending: is_integer(opts[:max_pending]) and opts[:max_pending] > 0,
          batch_size: is_integer(opts[:batch_size]) and opts[:batch_size] in 1..1_000,
          flush_after: is_integer(opts[:flush_after]) and opts[:flush_after] > 0,
          timeout: is_integer(opts[:timeout]) and opts[:timeout] > 0
        ],
        not ok? do
      raise ArgumentError,
            "invalid option #{inspect(key)} for the feedback buffer: #{inspect(opts[key])}"
    end

    GenServer.start_link(__MODULE__, opts, name: name(pool))
  end

  @doc "The buffer's registered name for a pool."
  @spec name(atom()) :: atom()
  def name(pool), do: Module.concat(pool, FeedbackBuffer)

  @doc """
  Queues one event without waiting: `:ok`, or `:dropped` when `:max_pending`
  events are already held (or no buffer runs for `pool`). The event is checked
  here: a malformed one raises `ArgumentError` naming the field.
  """
  @spec push(atom(), Feedback.event()) :: :ok | :dropped
  def push(pool, event) do
    message = Feedback.event!({event, 0})
    buffer = name(pool)

    case :persistent_term.get({__MODULE__, buffer}, nil) do
      {counters, max_pending, pid} ->
        if :atomics.add_get(counters, 1, 1) > max_pending do
          :atomics.sub(counters, 1, 1)
          dropped(counters, pool, :full)
        else
          send(pid, {:event, message})
          :ok
        end

      nil ->
        :dropped
    end
  end

  @doc "Events held now, dropped and sent (accepted + duplicates) since start."
  @spec stats(atom()) :: %{
          pending: non_neg_integer(),
          dropped: non_neg_integer(),
          sent: non_neg_integer()
        }
  def stats(pool) do
    {counters, _max, _pid} = :persistent_term.get({__MODULE__, name(pool)})

    %{
      pending: :atomics.get(counters, 1),
      dropped: :atomics.get(counters, 2),
      sent: :atomics.get(counters, 3)
    }
  end

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    # pending, dropped, sent
    counters = :atomics.new(3, signed: true)
    :persistent_term.put({__MODULE__, name(opts[:pool])}, {counters, opts[:max_pending], self()})
    {:ok, tasks} = Task.Supervisor.start_link()
    {min, max} = opts[:backoff]

    {:ok,
     %{
       opts: opts,
       counters: counters,
       tasks: tasks,
       queue: :queue.new(),
       queued: 0,
       in_flight: nil,
       timer: nil,
       attempt: 0,
       holding: false,
       backoff: Backoff.new(min, max)
     }}
  end

  @impl true
  def handle_info({:event, message}, state) do
    state = %{state | queue: :queue.in(message, state.queue), queued: state.queued + 1}
    {:noreply, maybe_send(state)}
  end

  def handle_info(:flush, state), do: {:noreply, maybe_send(%{state | timer: nil}, true)}

  def handle_info({ref, result}, %{in_flight: {%Task{ref: ref}, batch}} = state) do
    Process.demonitor(ref, [:flush])
    {:noreply, answered(%{state | in_flight: nil}, batch, result)}
  end

  def handle_info(
        {:DOWN, ref, :process, _, reason},
        %{in_flight: {%Task{ref: ref}, batch}} = state
      ) do
    {:noreply, answered(%{state | in_flight: nil}, batch, {:error, {:crashed, reason}})}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    :persistent_term.erase({__MODULE__, name(state.opts[:pool])})
  end

  defp answered(state, batch, {:ok, %Feedback.Result{accepted: accepted, duplicates: duplicates}}) do
    :atomics.sub(state.counters, 1, length(batch))
    :atomics.add(state.counters, 3, accepted + duplicates)
    maybe_send(%{state | attempt: 0})
  end

  defp answered(state, batch, {:error, %UroReco.Error{code: code} = error})
       when code in @input_errors do
    Logger.warning(
      "reco feedback batch of #{length(batch)} refused, dropped: #{Exception.message(error)}"
    )

    :atomics.sub(state.counters, 1, length(batch))
    for _ <- batch, do: dropped(state.counters, state.opts[:pool], :refused)
    maybe_send(%{state | attempt: 0})
  end

  defp answered(state, batch, {:error, reason}) do
    # Back to the front of the queue; the next batch waits for the backoff
    # timer, not for new events.
    if state.attempt == 0,
      do: Logger.warning("reco feedback batch failed, retrying: #{inspect(reason, limit: 5)}")

    if state.timer, do: Process.cancel_timer(state.timer)

    %{
      state
      | queue: :queue.join(:queue.from_list(batch), state.queue),
        queued: state.queued + length(batch),
        attempt: state.attempt + 1,
        holding: true,
        timer: Process.send_after(self(), :flush, Backoff.delay(state.backoff, state.attempt))
    }
  end

  defp maybe_send(state, flush? \\ false)
  defp maybe_send(%{in_flight: {_, _}} = state, _flush?), do: state
  defp maybe_send(%{queued: 0} = state, _flush?), do: state

  defp maybe_send(state, flush?) do
    batch_size = state.opts[:batch_size]

    cond do
      state.holding and not flush? ->
        state

      flush? or state.queued >= batch_size ->
        {items, queue} = take(state.queue, min(batch_size, state.queued))
        pool = state.opts[:pool]
        timeout = state.opts[:timeout]

        task =
          Task.Supervisor.async_nolink(state.tasks, fn ->
            Feedback.send_messages(pool, items, timeout: timeout, max_attempts: 1)
          end)

        if state.timer, do: Process.cancel_timer(state.timer)

        %{
          state
          | queue: queue,
            queued: state.queued - length(items),
            in_flight: {task, items},
            timer: nil,
            holding: false
        }

      state.timer == nil ->
        %{state | timer: Process.send_after(self(), :flush, state.opts[:flush_after])}

      true ->
        state
    end
  end

  defp take(queue, n) do
    {taken, rest} = :queue.split(n, queue)
    {:queue.to_list(taken), rest}
  end

  defp dropped(counters, pool, why) do
    :atomics.add(counters, 2, 1)
    :telemetry.execute([:uro_reco, :feedback, :dropped], %{count: 1}, %{pool: pool, reason: why})
    :dropped
  end
end
