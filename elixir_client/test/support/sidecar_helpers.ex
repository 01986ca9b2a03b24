defmodule UroReco.Test.SidecarHelpers do
  @moduledoc """
  Helpers for tests against the real Python sidecar: a demo model made with the
  sidecar's own CLIs, OS process inspection and clean-up.

  The interpreter comes from `RECO_SIDECAR_PYTHON` (default `python3`); the
  repository root (or `RECO_SIDECAR_ROOT`) is put on `PYTHONPATH` so a source
  checkout works uninstalled.
  Pure OTP: these run without hex dependencies.
  """

  import ExUnit.Assertions

  alias UroReco.Sidecar.OSProcess

  @repo_root Path.expand("../../..", __DIR__)

  @doc "The interpreter that runs the sidecar."
  @spec python() :: String.t()
  def python, do: System.get_env("RECO_SIDECAR_PYTHON", "python3")

  @doc "Environment for sidecar OS processes started by tests."
  @spec env() :: [{String.t(), String.t()}]
  def env do
    # RECO_SIDECAR_ROOT: another checkout's sidecar (default this repository's).
    root = System.get_env("RECO_SIDECAR_ROOT", @repo_root)
    path = Enum.join([root | List.wrap(System.get_env("PYTHONPATH"))], ":")
    [{"PYTHONPATH", path}]
  end

  @doc "A fresh directory, removed when the test module is done."
  @spec tmp_dir!(String.t()) :: String.t()
  def tmp_dir!(prefix) do
    dir = Path.join(System.tmp_dir!(), "#{prefix}_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    dir
  end

  @doc """
  Makes demo data and trains model `demo` (version 1) under `dir/models`.
  Returns the `UroReco.Sidecar` options that serve it, with the sidecars' logs
  going to `dir/sidecar.log`.
  """
  @spec demo_model!(String.t()) :: keyword()
  def demo_model!(dir) do
    csv = Path.join(dir, "interactions.csv")
    root = Path.join(dir, "models")

    cli!(~w(make-demo-data --out #{csv} --users 300 --items 200 --seed 1))
    cli!(~w(train --interactions #{csv} --model-root #{root} --name demo))

    [
      model_root: root,
      model: "demo",
      python: python(),
      env: env(),
      stderr: {:file, Path.join(dir, "sidecar.log")},
      backoff: {200, 2_000}
    ]
  end

  @doc "Runs `python -m reco_sidecar ARGS`; returns stdout."
  @spec cli!([String.t()]) :: String.t()
  def cli!(args) do
    {out, status} =
      System.cmd(python(), ["-m", "reco_sidecar" | args], env: env(), stderr_to_stdout: true)

    assert status == 0, "reco_sidecar #{Enum.join(args, " ")} exited #{status}:\n#{out}"
    out
  end

  @doc "The pids of a process's children (its sidecar workers)."
  @spec children(pos_integer()) :: [pos_integer()]
  def children(os_pid) do
    {out, _} = System.cmd("ps", ["-o", "pid=", "--ppid", Integer.to_string(os_pid)])
    out |> String.split() |> Enum.map(&String.to_integer/1)
  end

  @doc "Asserts that `fun` returns truthy within `timeout` ms."
  @spec eventually((-> as_boolean(term())), String.t(), pos_integer()) :: :ok
  def eventually(fun, what, timeout \\ 10_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    wait(fun, what, deadline)
  end

  defp wait(fun, what, deadline) do
    cond do
      fun.() ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        flunk("timed out waiting until #{what}")

      true ->
        Process.sleep(100)
        wait(fun, what, deadline)
    end
  end

  @doc "Asserts that none of these OS processes is left, within `timeout` ms."
  @spec assert_gone([pos_integer()], pos_integer()) :: :ok
  def assert_gone(os_pids, timeout \\ 10_000) do
    eventually(
      fn -> Enum.all?(os_pids, &(not OSProcess.alive?(&1))) end,
      "OS processes #{inspect(os_pids)} are gone",
      timeout
    )
  end

  @doc """
  Makes sure the sidecar behind `ready` and its workers are gone after the test,
  even when it fails. Returns the pids.
  """
  @spec track(UroReco.Sidecar.Ready.t()) :: [pos_integer()]
  def track(ready) do
    pids = [ready.os_pid | children(ready.os_pid)]
    ExUnit.Callbacks.on_exit(fn -> kill_all(pids) end)
    pids
  end

  @doc "SIGKILLs whatever is left of these OS processes (test clean-up, also on failure)."
  @spec kill_all([pos_integer()]) :: :ok
  def kill_all(os_pids) do
    for pid <- os_pids, OSProcess.alive?(pid), do: OSProcess.signal(pid, "KILL")
    :ok
  end

  @doc "Whether something accepts TCP connections at `host:port`."
  @spec listening?(String.t()) :: boolean()
  def listening?(address) do
    [host, port] = String.split(address, ":")

    case :gen_tcp.connect(String.to_charlist(host), String.to_integer(port), [], 1_000) do
      {:ok, socket} -> :gen_tcp.close(socket) == :ok
      {:error, _} -> false
    end
  end
end
