defmodule UroReco.SidecarTest do
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.Sidecar
  alias UroReco.Sidecar.{Command, OSProcess, Ready}

  @moduletag :otp
  @moduletag timeout: 120_000

  setup_all do
    dir = tmp_dir!("uro_reco_sidecar")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{opts: demo_model!(dir) ++ [workers: 2]}
  end

  defp start_sidecar(opts, child_opts \\ []) do
    pid = start_supervised!(Supervisor.child_spec({Sidecar, opts}, child_opts))
    {pid, opts}
  end

  test "boots, reports every worker's address and serves on them", %{opts: opts} do
    {pid, _} = start_sidecar(opts)
    assert {:ok, %Ready{} = ready} = Sidecar.await_ready(pid, 60_000)
    track(ready)

    assert ready.os_pid == Sidecar.os_pid(pid)
    assert {ready.model, ready.version, ready.workers} == {"demo", 1, 2}
    assert length(ready.worker_addresses) == 2
    assert ready.address == "127.0.0.1:#{ready.port}"
    assert Enum.all?([ready.address | ready.worker_addresses], &listening?/1)
    assert {:ok, ^ready} = Sidecar.ready(pid)
  end

  test "starts a killed sidecar again and tells subscribers", %{opts: opts} do
    {pid, _} = start_sidecar(opts)
    {:ok, first} = Sidecar.await_ready(pid, 60_000)
    old = track(first)
    :ok = Sidecar.subscribe(pid)
    assert_receive {Sidecar, ^pid, {:ready, ^first}}

    OSProcess.signal(first.os_pid, "KILL")

    assert_receive {Sidecar, ^pid, :down}, 5_000
    assert_receive {Sidecar, ^pid, {:ready, second}}, 60_000
    track(second)
    assert second.os_pid != first.os_pid
    assert Sidecar.os_pid(pid) == second.os_pid
    assert Enum.all?(second.worker_addresses, &listening?/1)
    # The killed supervisor's workers must not outlive it.
    assert_gone(old)
  end

  test "stopping leaves no OS process behind", %{opts: opts} do
    {pid, _} = start_sidecar(opts)
    {:ok, ready} = Sidecar.await_ready(pid, 60_000)
    pids = track(ready)
    assert length(pids) >= 3, "expected the supervisor and 2 workers, got #{inspect(pids)}"

    :ok = stop_supervised(Sidecar)

    refute OSProcess.alive?(ready.os_pid)
    assert_gone(pids)
  end

  test "closing the port alone stops the sidecar (stdin EOF)", %{opts: opts} do
    {exe, args} = Command.build(opts)
    env = for {k, v} <- opts[:env], do: {String.to_charlist(k), String.to_charlist(v)}

    port =
      Port.open({:spawn_executable, exe}, [:binary, {:line, 65_536}, {:args, args}, {:env, env}])

    assert_receive {^port, {:data, {:eol, line}}}, 60_000
    assert {:ok, ready} = Ready.parse(line)
    pids = track(ready)

    Port.close(port)

    assert_gone(pids, 15_000)
  end

  test "a sidecar idle for --idle-shutdown-after exits and the server stops normally",
       %{opts: opts} do
    {pid, _} = start_sidecar(opts ++ [idle_shutdown_after: 2_000], restart: :temporary)
    ref = Process.monitor(pid)
    {:ok, ready} = Sidecar.await_ready(pid, 60_000)
    pids = track(ready)

    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}, 30_000
    assert_gone(pids)
  end

  test "a sidecar that does not get ready in time is killed and started again", %{opts: opts} do
    {pid, _} = start_sidecar(opts ++ [boot_timeout: 300, backoff: {50, 100}])
    first = Sidecar.os_pid(pid)
    on_exit(fn -> kill_all([first]) end)

    eventually(fn -> Sidecar.os_pid(pid) not in [nil, first] end, "a second boot starts")
    assert_gone([first])
    assert {:error, :not_ready} = Sidecar.ready(pid)
  end

  test "a configuration the sidecar rejects (exit status 2) stops the server", %{opts: opts} do
    {pid, _} = start_sidecar(Keyword.put(opts, :workers, 0), restart: :temporary)
    ref = Process.monitor(pid)
    assert {:error, {:exit_status, 2}} = Sidecar.await_ready(pid, 30_000)

    assert_receive {:DOWN, ^ref, :process, ^pid, reason}, 30_000
    assert reason == {:shutdown, {:sidecar_exit, 2}}
  end
end
