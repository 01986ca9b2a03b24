defmodule UroReco.ResilienceTest do
  # Needs the hex dependencies. Dead, draining, stopped and restarted sidecars
  # under a real ChannelPool and real calls.
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.{ChannelPool, Client, Error, Sidecar}
  alias UroReco.Sidecar.OSProcess

  @moduletag :hex
  @moduletag timeout: 180_000

  # The issue this answers asks that no call outlive its deadline by more than this.
  @deadline_slack_ms 100
  @fixed UroReco.Test.FixedChannels

  setup do
    dir = tmp_dir!("uro_reco_resilience")
    on_exit(fn -> File.rm_rf!(dir) end)
    UroReco.Test.ServedModel.start!(dir)
  end

  describe "a pool on fixed addresses" do
    setup %{ready: ready} = ctx do
      start_supervised!(
        {ChannelPool, name: @fixed, addresses: ready.worker_addresses, backoff: {100, 1_000}},
        id: :fixed
      )

      await_status(@fixed, :serving, 30_000)
      warm_up(@fixed, ctx.user_id)
      %{worker_pids: children(ready.os_pid)}
    end

    test "drops killed workers within 1 s: their health streams close", ctx do
      kill_all([ctx.ready.os_pid | ctx.worker_pids])

      await_status(@fixed, :connecting, 1_000)
      assert {:error, :no_channel} = ChannelPool.pick(@fixed)
    end

    test "takes draining (NOT_SERVING) workers out of rotation", ctx do
      OSProcess.signal(ctx.ready.os_pid, "TERM")

      eventually(fn -> serving(@fixed) == [] end, "the draining workers leave the pool", 1_000)
      assert {:error, :no_channel} = ChannelPool.pick(@fixed)
    end

    test "a stopped worker: the deadline holds, and SERVING puts a suspect channel back", ctx do
      %{user_id: user, worker_pids: workers} = ctx
      on_exit(fn -> Enum.each(workers, &OSProcess.signal(&1, "CONT")) end)
      Enum.each(workers, &OSProcess.signal(&1, "STOP"))

      # The connections stay open and the health streams silent; a call hangs
      # in the transport until its deadline.
      for timeout <- [200, 500] do
        {elapsed, result} = timed(fn -> Client.recommend(@fixed, user, timeout: timeout) end)
        assert {:error, %Error{code: :deadline_exceeded}} = result
        assert elapsed <= timeout + @deadline_slack_ms
      end

      channels = for _ <- ctx.ready.worker_addresses, do: elem(ChannelPool.pick(@fixed), 1)
      Enum.each(channels, &ChannelPool.report_unavailable(@fixed, &1))

      # Health/Check cannot answer from a stopped process: the channels stay out.
      await_status(@fixed, :suspect, 1_000)
      assert {:error, :no_channel} = ChannelPool.pick(@fixed)

      Enum.each(workers, &OSProcess.signal(&1, "CONT"))
      await_status(@fixed, :serving, 15_000)
      assert {:ok, %{user_id: ^user}} = Client.recommend(@fixed, user)
    end
  end

  test "discover: reads the workers at the shared address and drops them when killed", ctx do
    pool = UroReco.Test.DiscoveredChannels
    start_supervised!({ChannelPool, name: pool, discover: ctx.ready.address}, id: :discovered)

    await_status(pool, :serving, 30_000)
    assert Enum.sort(ChannelPool.addresses(pool)) == Enum.sort(ctx.ready.worker_addresses)

    kill_all([ctx.ready.os_pid | children(ctx.ready.os_pid)])
    eventually(fn -> serving(pool) == [] end, "the killed workers leave the pool", 1_000)
    assert {:error, :no_channel} = ChannelPool.pick(pool)
  end

  test "connecting happens outside the pool process" do
    address = "127.0.0.1:#{closed_port()}"
    pool = UroReco.Test.DeadChannels
    start_supervised!({ChannelPool, name: pool, addresses: [address]}, id: :dead)

    # grpc's connect to a closed port blocks for 5 s; the pool answers meanwhile.
    assert [{^address, :connecting}] = GenServer.call(pool, :status, 500)
    assert ChannelPool.addresses(pool) == [address]

    warm_up(pool, "anyone")
    {elapsed, result} = timed(fn -> Client.status(pool, timeout: 300) end)
    assert {:error, %Error{code: :deadline_exceeded, message: message}} = result
    assert message =~ "no serving channel"
    assert elapsed <= 300 + @deadline_slack_ms
  end

  test "calls ride through a sidecar kill and restart, within their deadlines", ctx do
    %{pool: pool, sidecar: sidecar, ready: ready, user_id: user} = ctx
    timeout = 30_000
    test = self()

    loop =
      spawn_link(fn ->
        results = client_loop(test, pool, user, timeout, [])
        send(test, {:results, results})
      end)

    # Some calls succeed before the kill.
    assert_receive {:call, :ok}, 10_000
    old = ready.worker_addresses
    kill_all(track(ready))

    # The dead workers leave the pool within 1 s.
    eventually(
      fn -> Enum.all?(old, fn address -> address not in serving(pool) end) end,
      "the killed workers leave the pool",
      1_000
    )

    {:ok, new_ready} = Sidecar.await_ready(sidecar, 60_000)
    track(new_ready)
    assert new_ready.os_pid != ready.os_pid

    # Calls that succeed on the new workers.
    await_status(pool, :serving, 30_000)
    flush_calls()
    for _ <- 1..5, do: assert_receive({:call, :ok}, timeout)
    send(loop, :stop)
    assert_receive {:results, results}, timeout + 5_000

    assert results != []

    assert Enum.all?(results, fn {result, _elapsed} -> match?({:ok, _}, result) end),
           inspect(Enum.reject(results, &match?({{:ok, _}, _}, &1)))

    slowest = results |> Enum.map(&elem(&1, 1)) |> Enum.max()
    assert slowest <= timeout + @deadline_slack_ms
  end

  test "a transport failure counts as UNAVAILABLE; a server's INTERNAL stays final" do
    assert %Error{code: :unavailable, message: ":stream_error: :closed"} =
             UroReco.Client.Call.error(%GRPC.RPCError{
               status: 13,
               message: ":stream_error: :closed"
             })

    assert %Error{code: :unavailable} =
             UroReco.Client.Call.error(%GRPC.RPCError{
               status: 13,
               message: ":connection_error: :closed"
             })

    assert %Error{code: :internal} =
             UroReco.Client.Call.error(%GRPC.RPCError{status: 13, message: "model failed"})
  end

  defp client_loop(test, pool, user, timeout, acc) do
    receive do
      :stop -> Enum.reverse(acc)
    after
      0 ->
        {elapsed, result} = timed(fn -> Client.recommend(pool, user, timeout: timeout) end)
        send(test, {:call, elem(result, 0)})
        # Paced, so the loop does not starve the sidecar of the shared CPU.
        Process.sleep(20)
        client_loop(test, pool, user, timeout, [{result, elapsed} | acc])
    end
  end

  defp flush_calls do
    receive do
      {:call, _} -> flush_calls()
    after
      0 -> :ok
    end
  end

  defp serving(pool) do
    for {address, :serving} <- ChannelPool.status(pool), do: address
  end

  defp await_status(pool, status, timeout) do
    eventually(
      fn ->
        slots = ChannelPool.status(pool)
        slots != [] and Enum.all?(slots, fn {_, s} -> s == status end)
      end,
      "every channel of #{inspect(pool)} is #{status}",
      timeout
    )
  end

  # The first call in a VM loads the client's modules from disk (interactive
  # mode; a release preloads them), which would count against its deadline.
  defp warm_up(pool, user) do
    Client.recommend(pool, user, timeout: 100)
    :ok
  end

  defp timed(fun) do
    started = System.monotonic_time(:millisecond)
    result = fun.()
    {System.monotonic_time(:millisecond) - started, result}
  end

  defp closed_port do
    {:ok, socket} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(socket)
    :ok = :gen_tcp.close(socket)
    port
  end
end
