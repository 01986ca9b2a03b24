defmodule UroReco.DrainTest do
  # Needs the hex dependencies. A sidecar with a long --grace and a pool
  # attached to it.
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.ChannelPool
  alias UroReco.Sidecar.OSProcess

  @moduletag :hex
  @moduletag timeout: 180_000

  setup do
    dir = tmp_dir!("uro_reco_grace")
    on_exit(fn -> File.rm_rf!(dir) end)
    UroReco.Test.ServedModel.start!(dir, ["--grace", "120"])
  end

  # An idle sidecar stops in about 2 s. Its pool's Watch streams used to be
  # calls in flight that the drain waited for, the whole --grace, on every
  # rolling restart and idle shutdown: the watcher now ends its stream on
  # NOT_SERVING (and the sidecar ends it too).
  test "an attached pool does not hold the drain for --grace", ctx do
    %{ready: ready, pool: pool} = ctx
    processes = [ready.os_pid | children(ready.os_pid)]
    assert length(processes) >= 3

    OSProcess.signal(ready.os_pid, "TERM")

    eventually(fn -> serving(pool) == [] end, "the draining workers leave the pool", 5_000)

    eventually(
      fn -> not Enum.any?(processes, &OSProcess.alive?/1) end,
      "the sidecar and its workers exit well within the 120 s grace",
      60_000
    )
  end

  defp serving(pool) do
    for {address, :serving} <- ChannelPool.status(pool), do: address
  end
end
