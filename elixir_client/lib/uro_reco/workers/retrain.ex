if Code.ensure_loaded?(Oban.Worker) and Code.ensure_loaded?(Ecto.Query) do
  defmodule UroReco.Workers.Retrain do
    @moduledoc """
    Trains a new model version and makes the sidecar serve it.

    Exports `user_interactions` to CSV (or uses `args["interactions"]`, a CSV
    path), runs `UroReco.Training.train/2` with the `:training` settings of the
    instance its `"instance"` arg names (`UroReco.Jobs`, default `"UroReco"`),
    then calls `Reload` with the new version: every sidecar worker loads and
    validates it before it swaps, and keeps serving the old version when that
    fails. An instance registered without `:training` fails the job naming it.

        UroReco.Workers.Retrain.new(%{}) |> Oban.insert()
    """

    use Oban.Worker, queue: :reco_training, max_attempts: 3

    alias UroReco.{Client, Jobs, Training}

    @impl Oban.Worker
    def perform(%Oban.Job{id: id, args: args}) do
      with {:ok, jobs} <- Jobs.fetch(args, [:training]),
           settings = jobs[:training],
           {:ok, csv} <- interactions(args, settings, jobs[:repo], id) do
        try do
          with {:ok, version} <- Training.train(csv, settings),
               {:ok, _reload} <- Client.reload(jobs[:channel_pool], version, timeout: 120_000) do
            :ok
          end
        after
          unless Map.has_key?(args, "interactions"), do: File.rm(csv)
        end
      end
    end

    defp interactions(%{"interactions" => path}, _settings, _repo, _id), do: {:ok, path}

    defp interactions(_args, settings, repo, id) do
      path = Path.join(settings[:workdir], "interactions-#{id}.csv")
      :ok = UroReco.Recommendations.export_interactions(repo, path)
      {:ok, path}
    end
  end
end
