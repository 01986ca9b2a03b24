defmodule UroReco.SidecarPoolTest do
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.SidecarPool
  alias UroReco.Sidecar.OSProcess

  @moduletag :otp
  @moduletag timeout: 180_000

  setup_all do
    dir = tmp_dir!("uro_reco_pool")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{sidecar: demo_model!(dir)}
  end

  defp start_pool(sidecar, opts) do
    start_supervised!({SidecarPool, [sidecar: sidecar, boot_timeout: 60_000] ++ opts})
  end

  defp checkout!(pool, timeout \\ nil) do
    assert {:ok, ref, ready} = SidecarPool.checkout(pool, timeout)
    track(ready)
    {ref, ready}
  end

  test "boots :min sidecars and hands them out round robin", %{sidecar: sidecar} do
    pool = start_pool(sidecar, min: 2, max: 2)
    assert length(SidecarPool.sidecars(pool)) == 2

    eventually(
      fn -> Enum.all?(SidecarPool.sidecars(pool), & &1.ready) end,
      "both sidecars serve",
      60_000
    )

    {_, a} = checkout!(pool)
    {_, b} = checkout!(pool)
    {_, c} = checkout!(pool)

    assert a.os_pid != b.os_pid
    assert c.os_pid == a.os_pid
    assert Enum.map(SidecarPool.sidecars(pool), & &1.load) |> Enum.sort() == [1, 2]
  end

  test "boots more on demand up to :max, then callers wait for a checkin", %{sidecar: sidecar} do
    pool = start_pool(sidecar, min: 0, max: 2, max_concurrency: 1)
    assert SidecarPool.sidecars(pool) == []

    {ref_a, a} = checkout!(pool)
    {_ref_b, b} = checkout!(pool)
    assert a.os_pid != b.os_pid
    assert length(SidecarPool.sidecars(pool)) == 2

    assert {:error, :timeout} = SidecarPool.checkout(pool, 300)

    waiter = Task.async(fn -> SidecarPool.checkout(pool, 10_000) end)
    Process.sleep(100)
    SidecarPool.checkin(pool, ref_a)
    assert {:ok, _ref, ^a} = Task.await(waiter)
  end

  test "a caller that exits gives its checkout back", %{sidecar: sidecar} do
    pool = start_pool(sidecar, min: 1, max: 1, max_concurrency: 1)
    parent = self()

    holder =
      spawn(fn ->
        {:ok, _ref, ready} = SidecarPool.checkout(pool)
        send(parent, {:holding, ready})
        Process.sleep(:infinity)
      end)

    assert_receive {:holding, ready}, 60_000
    track(ready)
    assert {:error, :timeout} = SidecarPool.checkout(pool, 200)

    Process.exit(holder, :kill)
    assert {:ok, _ref, ^ready} = SidecarPool.checkout(pool, 5_000)
  end

  test "with_sidecar/3 checks the sidecar in again", %{sidecar: sidecar} do
    pool = start_pool(sidecar, min: 1, max: 1, max_concurrency: 1)

    port =
      SidecarPool.with_sidecar(pool, fn ready ->
        track(ready)
        ready.port
      end)

    assert is_integer(port)
    assert [%{load: 0}] = SidecarPool.sidecars(pool)
  end

  test "stops idle sidecars above :min", %{sidecar: sidecar} do
    pool = start_pool(sidecar, min: 1, max: 2, max_concurrency: 1, idle_shutdown_after: 1_000)

    {ref_a, a} = checkout!(pool)
    {ref_b, b} = checkout!(pool)
    pids = [a.os_pid, b.os_pid]
    SidecarPool.checkin(pool, ref_a)
    SidecarPool.checkin(pool, ref_b)

    eventually(fn -> length(SidecarPool.sidecars(pool)) == 1 end, "one sidecar is left", 15_000)
    eventually(fn -> Enum.count(pids, &OSProcess.alive?/1) == 1 end, "one OS process is left")
    [%{ready: left}] = SidecarPool.sidecars(pool)
    assert left.os_pid in pids
  end

  test "stopping the pool stops every sidecar", %{sidecar: sidecar} do
    pool = start_pool(sidecar, min: 2, max: 2)
    {_, a} = checkout!(pool)
    {_, b} = checkout!(pool)
    pids = [a.os_pid | children(a.os_pid)] ++ [b.os_pid | children(b.os_pid)]

    :ok = stop_supervised(SidecarPool)

    assert_gone(pids)
  end

  test "stops when the sidecar rejects its configuration", %{sidecar: sidecar} do
    Process.flag(:trap_exit, true)
    {:ok, pool} = SidecarPool.start_link(sidecar: Keyword.put(sidecar, :workers, 0), min: 1)

    assert_receive {:EXIT, ^pool, {:shutdown, {:sidecar_exit, 2}}}, 30_000
  end
end
