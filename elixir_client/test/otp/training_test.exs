defmodule UroReco.TrainingTest do
  use ExUnit.Case, async: true

  import UroReco.Test.SidecarHelpers

  alias UroReco.Training

  @moduletag :otp
  @moduletag timeout: 120_000

  setup do
    dir = tmp_dir!("uro_reco_training")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{dir: dir, opts: demo_model!(dir)}
  end

  test "writes the next version and returns its number", %{dir: dir, opts: opts} do
    csv = Path.join(dir, "interactions.csv")
    opts = Keyword.take(opts, [:model_root, :model, :python, :env])

    assert {:ok, 2} = Training.train(csv, opts)
    assert File.exists?(Path.join([opts[:model_root], "demo", "2", "manifest.json"]))
  end

  test "reports a failed training", %{dir: dir, opts: opts} do
    opts = Keyword.take(opts, [:model_root, :model, :python, :env])

    assert {:error, {:train_failed, status, _}} =
             Training.train(Path.join(dir, "missing.csv"), opts)

    assert status != 0
  end
end
