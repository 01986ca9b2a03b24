defmodule UroReco.Training do
  @moduledoc """
  Trains a new model version with the sidecar's CLI:
  `python -m reco_sidecar train --interactions CSV --model-root ROOT --name MODEL`.

  The CSV has the columns `user_id,item_id,weight,timestamp`. The new version is
  written next to the served ones; a sidecar picks it up on `Reload` (see
  `UroReco.Workers.Retrain`). Pure OTP.
  """

  @doc """
  Runs the training and returns the new version number.

  Options: `:model_root`, `:model` (required), `:python` (default `"python3"`),
  `:env`, `:extra_args` (e.g. `["--factors", "64"]`).
  """
  @spec train(Path.t(), keyword()) :: {:ok, pos_integer()} | {:error, term()}
  def train(interactions_csv, opts) do
    python = Keyword.get(opts, :python, "python3")

    args =
      ["-m", "reco_sidecar", "train", "--interactions", interactions_csv] ++
        [
          "--model-root",
          Keyword.fetch!(opts, :model_root),
          "--name",
          Keyword.fetch!(opts, :model)
        ] ++
        Keyword.get(opts, :extra_args, [])

    case System.cmd(python, args, env: Keyword.get(opts, :env, [])) do
      {out, 0} -> version(out)
      {out, status} -> {:error, {:train_failed, status, out}}
    end
  end

  # The command prints the directory of the version it wrote, e.g. ".../posts/7".
  defp version(out) do
    with [dir | _] <- out |> String.split("\n", trim: true) |> Enum.reverse(),
         {version, ""} <- dir |> String.trim() |> Path.basename() |> Integer.parse() do
      {:ok, version}
    else
      _ -> {:error, {:unexpected_output, out}}
    end
  end
end
