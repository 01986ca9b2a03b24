defmodule UroReco.Client.Deadline do
  @moduledoc false
  # Runs a piece of a call in its own process and waits for it no longer than the
  # caller's deadline. grpc 1.0's gun adapter waits twice the `:timeout` it is
  # given, and its connection calls have their own 5 s timeouts, so the library
  # alone cannot keep a deadline.
  #
  # A piece still running at the deadline is left to finish on its own (it is
  # bounded by the timeout it was given); killing it would leave grpc's
  # per-request response process behind. Its late result goes to a deactivated
  # alias and is dropped, so it never lands in the caller's mailbox.

  @type deadline :: integer()

  @doc "A deadline `ms` milliseconds from now (monotonic)."
  @spec after_ms(non_neg_integer()) :: deadline()
  def after_ms(ms), do: now() + ms

  @doc "Milliseconds left before `deadline` (0 when passed)."
  @spec remaining(deadline()) :: non_neg_integer()
  def remaining(deadline), do: max(deadline - now(), 0)

  @doc """
  `{:ok, fun.()}`, `:timeout` at the deadline, or `{:exit, reason}` when `fun`
  exited (a grpc connection process that went away). Raises what `fun` raises.
  With `watch: pid`, stops waiting with `{:down, reason}` when `pid` exits.
  """
  @spec run(deadline(), (-> term()), keyword()) ::
          {:ok, term()} | :timeout | {:exit, term()} | {:down, term()}
  def run(deadline, fun, opts \\ []) do
    reply_to = :erlang.alias([:explicit_unalias])
    watched = if pid = opts[:watch], do: Process.monitor(pid)

    {pid, monitor} =
      spawn_monitor(fn ->
        result =
          try do
            {:ok, fun.()}
          catch
            :exit, reason -> {:exit, reason}
            kind, reason -> {:raise, kind, reason, __STACKTRACE__}
          end

        send(reply_to, {reply_to, result})
      end)

    result =
      receive do
        {^reply_to, result} ->
          :erlang.unalias(reply_to)
          Process.demonitor(monitor, [:flush])
          unwrap(result)

        {:DOWN, ^monitor, :process, ^pid, reason} ->
          :erlang.unalias(reply_to)
          {:exit, reason}

        {:DOWN, ^watched, :process, _, reason} ->
          give_up(reply_to, monitor, {:down, reason})
      after
        remaining(deadline) -> give_up(reply_to, monitor, :timeout)
      end

    if watched, do: Process.demonitor(watched, [:flush])
    result
  end

  defp give_up(reply_to, monitor, why) do
    :erlang.unalias(reply_to)
    Process.demonitor(monitor, [:flush])
    # The reply may have arrived in between; the alias no longer lets it in.
    receive do
      {^reply_to, result} -> unwrap(result)
    after
      0 -> why
    end
  end

  @doc """
  The elements of `enumerable`, each read within `deadline`. When the deadline
  passes or reading exits, `on_failure.(:timeout | {:exit, reason})` is emitted
  and the stream ends.
  """
  @spec stream(Enumerable.t(), deadline(), (:timeout | {:exit, term()} -> term())) ::
          Enumerable.t()
  def stream(enumerable, deadline, on_failure) do
    Stream.resource(
      fn -> {:start, enumerable} end,
      fn
        :done ->
          {:halt, :done}

        state ->
          case run(deadline, fn -> pull(state) end) do
            {:ok, {:suspended, element, continuation}} -> {[element], {:cont, continuation}}
            {:ok, _done_or_halted} -> {:halt, :done}
            failure -> {[on_failure.(failure)], :done}
          end
      end,
      fn _ -> :ok end
    )
  end

  defp pull({:start, enumerable}),
    do: Enumerable.reduce(enumerable, {:cont, nil}, fn element, _ -> {:suspend, element} end)

  defp pull({:cont, continuation}), do: continuation.({:cont, nil})

  defp unwrap({:ok, value}), do: {:ok, value}
  defp unwrap({:exit, reason}), do: {:exit, reason}
  defp unwrap({:raise, kind, reason, stack}), do: :erlang.raise(kind, reason, stack)

  defp now, do: System.monotonic_time(:millisecond)
end
