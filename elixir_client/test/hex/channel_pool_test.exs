defmodule UroReco.ChannelPoolTest do
  # Needs the hex dependencies. A real sidecar (2 workers) and a pool on its
  # workers' fixed addresses.
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.{ChannelPool, Sidecar}

  @moduletag :hex
  @moduletag timeout: 180_000

  @pool UroReco.Test.PoolUnderTest

  setup do
    dir = tmp_dir!("uro_reco_channel_pool")
    on_exit(fn -> File.rm_rf!(dir) end)
    sidecar = start_supervised!({Sidecar, demo_model!(dir) ++ [workers: 2]})
    {:ok, ready} = Sidecar.await_ready(sidecar, 60_000)
    %{ready: ready, os_pids: track(ready)}
  end

  test "every state change of a worker's channel is a [:uro_reco, :pool, :health] event", ctx do
    test = self()
    handler = make_ref()

    :telemetry.attach(
      handler,
      [:uro_reco, :pool, :health],
      fn _event, %{count: 1}, meta, _ -> send(test, {:health, meta}) end,
      nil
    )

    on_exit(fn -> :telemetry.detach(handler) end)
    start_supervised!({ChannelPool, name: @pool, addresses: ctx.ready.worker_addresses})

    for address <- ctx.ready.worker_addresses do
      assert_receive {:health, %{pool: @pool, address: ^address, from: nil, to: :connecting}},
                     5_000

      assert_receive {:health, %{address: ^address, from: :connecting, to: :serving}}, 30_000
    end

    kill_all(ctx.os_pids)

    for address <- ctx.ready.worker_addresses do
      assert_receive {:health, %{address: ^address, from: :serving, to: :connecting}}, 5_000
    end

    assert UroReco.Telemetry.events() |> Enum.member?([:uro_reco, :pool, :health])
  end

  test "its watchers and helpers are supervised: none outlives the pool", ctx do
    pid = start_supervised!({ChannelPool, name: @pool, addresses: ctx.ready.worker_addresses})
    eventually(fn -> match?({:ok, _}, ChannelPool.pick(@pool)) end, "the pool serves", 30_000)

    %{tasks: tasks} = :sys.get_state(pid)
    helpers = Task.Supervisor.children(tasks)
    # One watcher per worker, each holding its Watch stream.
    assert length(helpers) >= 2
    monitors = Enum.map([tasks | helpers], &Process.monitor/1)

    stop_supervised!(ChannelPool.child_spec(name: @pool).id)

    for ref <- monitors, do: assert_receive({:DOWN, ^ref, :process, _, _}, 5_000)
  end

  test "options are checked before it starts, naming the option" do
    for {opts, option} <- [
          {[addresses: ["127.0.0.1:1"]], ":name"},
          {[name: @pool, addresses: ["127.0.0.1:1"], backoff: {5, 1}], ":backoff"},
          {[name: @pool, addresses: ["127.0.0.1:1"], colour: :red], ":colour"},
          {[name: @pool, addresses: "127.0.0.1:1"], ":addresses"},
          {[name: @pool, addresses: [], discover: "127.0.0.1:1"], ":discover"},
          {[name: @pool], ":addresses"}
        ] do
      error = assert_raise ArgumentError, fn -> ChannelPool.start_link(opts) end
      assert error.message =~ option, "#{inspect(opts)}: #{error.message}"
    end
  end
end
