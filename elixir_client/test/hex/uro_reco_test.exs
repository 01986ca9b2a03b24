defmodule UroRecoTest do
  # Needs the hex dependencies. The facade a host application adds with one
  # child spec, around a real sidecar.
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.{ChannelPool, Recommendation}

  @moduletag :hex
  @moduletag timeout: 180_000

  @name UroReco.Test.Facade

  test "one child spec runs the sidecar and its pool; calls take its name" do
    dir = tmp_dir!("uro_reco_facade")
    on_exit(fn -> File.rm_rf!(dir) end)

    start_supervised!({UroReco, name: @name, sidecar: demo_model!(dir) ++ [workers: 2]})
    {:ok, ready} = UroReco.Sidecar.await_ready(UroReco.sidecar(@name), 60_000)
    track(ready)

    children = @name |> Module.concat(Supervisor) |> Supervisor.which_children()

    assert children |> Enum.map(fn {_, _, _, [module]} -> module end) |> Enum.sort() ==
             [UroReco.ChannelPool, UroReco.Feedback.Buffer, UroReco.Sidecar]

    eventually(
      fn ->
        length(ChannelPool.status(@name)) == 2 and match?({:ok, _}, ChannelPool.pick(@name))
      end,
      "the pool serves both workers",
      30_000
    )

    assert {:ok, %Recommendation{source: :popular, items: [_, _, _], index: nil}} =
             UroReco.recommend(@name, "nobody", n: 3)

    assert [{:ok, %Recommendation{index: 0}}, {:ok, %Recommendation{index: 1}}] =
             @name |> UroReco.batch_recommend(["a", "b"], n: 2) |> Enum.to_list()
  end

  test "options are checked before anything starts, naming the option" do
    for {opts, option} <- [
          {[sidecar: []], ":name"},
          {[name: @name], ":sidecar"},
          {[name: @name, sidecar: [], discover: "127.0.0.1:1"], ":discover"},
          {[name: @name, discover: 42], ":discover"},
          {[name: @name, discover: "127.0.0.1:1", workers: 2], ":workers"}
        ] do
      error = assert_raise ArgumentError, fn -> UroReco.start_link(opts) end
      assert error.message =~ option, "#{inspect(opts)}: #{error.message}"
    end
  end
end
