defmodule UroReco.FlameTest do
  # Needs the hex dependencies (flame among them). The README's FLAME example,
  # as written there, on FLAME's LocalBackend: the runner is a process tree on
  # this node, so the placed sidecar is a real OS process and its calls real.
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.Sidecar.OSProcess

  @moduletag :hex
  @moduletag timeout: 300_000

  setup do
    dir = tmp_dir!("uro_reco_flame")
    on_exit(fn -> File.rm_rf!(dir) end)

    start_supervised!(
      {FLAME.Pool,
       name: UroReco.Test.RecoRunner,
       backend: FLAME.LocalBackend,
       min: 0,
       max: 1,
       max_concurrency: 10,
       idle_shutdown_after: :timer.minutes(5),
       boot_timeout: :timer.minutes(2)}
    )

    %{sidecar_opts: demo_model!(dir), csv: Path.join(dir, "interactions.csv")}
  end

  test "a sidecar and its channel pool placed on a runner answer batch_recommend there", ctx do
    users =
      ctx.csv
      |> File.stream!()
      |> Stream.drop(1)
      |> Stream.map(&hd(String.split(&1, ",")))
      |> Enum.uniq()
      |> Enum.take(40)

    test = self()

    children = [
      {UroReco.Sidecar, [name: UroReco.Test.RemoteSidecar, workers: 2] ++ ctx.sidecar_opts},
      {UroReco.ChannelPool,
       name: UroReco.Test.RemoteChannels, sidecar: UroReco.Test.RemoteSidecar}
    ]

    # place_child links the child to the caller: a process of its own here, so
    # the test can stop it and watch the sidecar go.
    placer =
      spawn(fn ->
        {:ok, sup} =
          FLAME.place_child(UroReco.Test.RecoRunner, %{
            id: UroReco.Test.Remote,
            start: {Supervisor, :start_link, [children, [strategy: :rest_for_one]]},
            type: :supervisor
          })

        send(test, {:placed, sup})
        receive do: (:stop -> :ok)
      end)

    assert_receive {:placed, sup}, 60_000
    assert node(sup) == node()

    {os_pid, results} =
      FLAME.call(
        UroReco.Test.RecoRunner,
        fn ->
          {:ok, ready} = UroReco.Sidecar.await_ready(UroReco.Test.RemoteSidecar, 60_000)

          eventually(
            fn -> match?({:ok, _}, UroReco.ChannelPool.pick(UroReco.Test.RemoteChannels)) end,
            "the runner's channel pool serves",
            30_000
          )

          {ready.os_pid,
           UroReco.Test.RemoteChannels
           |> UroReco.Client.batch_recommend(users, n: 5)
           |> Enum.to_list()}
        end,
        timeout: :timer.minutes(2)
      )

    assert length(results) == 40
    assert Enum.map(results, fn {:ok, rec} -> rec.user_id end) == users

    assert Enum.all?(results, fn {:ok, rec} -> length(rec.items) == 5 and rec.source == :model end)

    # The placed child lives as long as its caller: stopping the caller stops
    # the supervisor, and with it the sidecar's OS process.
    assert OSProcess.alive?(os_pid)
    ref = Process.monitor(sup)
    send(placer, :stop)
    assert_receive {:DOWN, ^ref, :process, ^sup, _}, 30_000
    eventually(fn -> not OSProcess.alive?(os_pid) end, "the placed sidecar exits", 30_000)
  end
end
