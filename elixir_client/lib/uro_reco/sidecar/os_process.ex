defmodule UroReco.Sidecar.OSProcess do
  @moduledoc """
  Signals and liveness checks for OS processes, through `kill(1)`.
  """

  @poll_ms 50

  @doc "Whether a process with this pid exists (`kill -0`)."
  @spec alive?(pos_integer()) :: boolean()
  def alive?(os_pid), do: kill("0", os_pid) == :ok

  @doc "Sends a signal, e.g. `\"TERM\"` or `\"KILL\"`."
  @spec signal(pos_integer(), String.t()) :: :ok | :error
  def signal(os_pid, name), do: kill(name, os_pid)

  @doc "Waits up to `timeout` ms for the process to be gone."
  @spec await_exit(pos_integer(), non_neg_integer()) :: :ok | :timeout
  def await_exit(os_pid, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    poll(os_pid, deadline)
  end

  @doc """
  Stops a process: SIGTERM, then SIGKILL if it is still there after `grace_ms`.
  """
  @spec terminate(pos_integer(), non_neg_integer()) :: :ok | :timeout
  def terminate(os_pid, grace_ms) do
    signal(os_pid, "TERM")

    with :timeout <- await_exit(os_pid, grace_ms) do
      signal(os_pid, "KILL")
      await_exit(os_pid, 1_000)
    end
  end

  defp poll(os_pid, deadline) do
    cond do
      not alive?(os_pid) ->
        :ok

      System.monotonic_time(:millisecond) >= deadline ->
        :timeout

      true ->
        Process.sleep(@poll_ms)
        poll(os_pid, deadline)
    end
  end

  defp kill(signal, os_pid) when is_integer(os_pid) and os_pid > 0 do
    case System.cmd("kill", ["-#{signal}", Integer.to_string(os_pid)], stderr_to_stdout: true) do
      {_, 0} -> :ok
      {_, _} -> :error
    end
  end
end
