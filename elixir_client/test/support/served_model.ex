defmodule UroReco.Test.ServedModel do
  @moduledoc """
  A demo model served by a real sidecar (2 workers) with a `UroReco.ChannelPool`
  named `UroReco.Test.Channels` following it; for the :hex tests.
  """

  import ExUnit.Callbacks
  import UroReco.Test.SidecarHelpers

  alias UroReco.{ChannelPool, Sidecar}

  @pool UroReco.Test.Channels

  @doc """
  Starts both under the test supervisor; returns the test context. `extra_args`
  go to `reco_sidecar serve` (e.g. `["--experiments", path]`).
  """
  @spec start!(String.t(), [String.t()]) :: map()
  def start!(dir, extra_args \\ []) do
    opts = demo_model!(dir) ++ [workers: 2, extra_args: extra_args]
    sidecar = start_supervised!({Sidecar, opts})
    {:ok, ready} = Sidecar.await_ready(sidecar, 60_000)
    track(ready)
    start_supervised!({ChannelPool, name: @pool, sidecar: sidecar})
    await_channels(ready.worker_addresses)

    %{
      pool: @pool,
      sidecar: sidecar,
      ready: ready,
      sidecar_opts: opts,
      csv: Path.join(dir, "interactions.csv"),
      user_id: first_user(Path.join(dir, "interactions.csv"))
    }
  end

  @doc "Waits until the pool is connected to exactly these addresses."
  @spec await_channels([String.t()]) :: :ok
  def await_channels(addresses) do
    eventually(
      fn ->
        ChannelPool.addresses(@pool) == addresses and
          Enum.all?(1..length(addresses), fn _ -> match?({:ok, _}, ChannelPool.pick(@pool)) end)
      end,
      "the channel pool connects to #{inspect(addresses)}",
      30_000
    )
  end

  defp first_user(csv) do
    csv |> File.stream!() |> Enum.at(1) |> String.split(",") |> hd()
  end
end
