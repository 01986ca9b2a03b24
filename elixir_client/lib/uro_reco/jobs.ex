defmodule UroReco.Jobs do
  @moduledoc """
  The settings of the Oban jobs (`UroReco.Workers.BatchRecommend`,
  `UroReco.Workers.Retrain`), given by the host as options, never read from
  application env.

  An Oban job receives only its args, so the settings are registered once per
  client instance and the job names its instance in its args:

      # the facade registers them under its own name
      {UroReco, name: Uro.Reco, sidecar: [...],
       jobs: [repo: Uro.Repo, batch: [n: 50], training: [model_root: root, model: "posts"]]}

      # a hand-built tree registers them itself, before Oban starts jobs
      UroReco.Jobs.register(Uro.Reco, repo: Uro.Repo, channel_pool: Uro.Reco.Channels)

      %{"after" => nil, "instance" => "Uro.Reco"} |> UroReco.Workers.BatchRecommend.new()

  `"instance"` is the instance's name as `inspect/1` writes it; a job without
  it uses the instance named `UroReco` (#{inspect(__MODULE__)}.default_instance/0).
  Jobs carry a string rather than an atom because their args are JSON in the
  database, and a string read back never creates an atom.

  The settings live in `:persistent_term`: a job reads them without a process
  hop, and registering the same settings again (a restarted facade) writes
  nothing. Options (checked by `UroReco.Options`, errors name the option):

    * `:repo` (required) - the Ecto repo holding `user_interactions` and
      `user_recommendations`
    * `:channel_pool` - the `UroReco.ChannelPool` to call (default: the instance
      name, which is the facade's pool)
    * `:oban` - the Oban instance follow-up jobs go to (default `Oban`)
    * `:batch` - `UroReco.Workers.BatchRecommend`'s settings (`UroReco.Options`
      schema `:batch`, defaults filled in)
    * `:training` - `UroReco.Workers.Retrain`'s: `:model_root`, `:model`
      (required when given), `:python`, `:workdir`, `:env`, `:extra_args`

  Pure OTP.
  """

  alias UroReco.Options

  @default_instance "UroReco"

  @doc "The instance a job without `\"instance\"` in its args uses."
  @spec default_instance() :: String.t()
  def default_instance, do: @default_instance

  @doc "Checks `opts` and registers them as the job settings of `instance`."
  @spec register(atom(), keyword()) :: :ok
  def register(instance, opts) when is_atom(instance) do
    opts = Options.validate!(:jobs, opts)

    settings =
      opts
      |> Keyword.put_new(:channel_pool, instance)
      |> with_workdir()

    key = key(inspect(instance))
    # Rewriting a persistent term makes every process scan for the old value:
    # skip the write when nothing changed.
    unless :persistent_term.get(key, nil) == settings, do: :persistent_term.put(key, settings)
    :ok
  end

  @doc "Forgets the settings of `instance` (a host stopping it for good, tests)."
  @spec unregister(atom()) :: :ok
  def unregister(instance) when is_atom(instance) do
    _ = :persistent_term.erase(key(inspect(instance)))
    :ok
  end

  @doc """
  The settings of the instance a job's `args` name: `{:ok, settings}`, or
  `{:error, message}` naming the instance when none is registered, or the
  setting the job needs (`:training`) when it was not given.
  """
  @spec fetch(map(), [atom()]) :: {:ok, keyword()} | {:error, String.t()}
  def fetch(args, needed \\ []) when is_map(args) do
    instance = Map.get(args, "instance", @default_instance)

    case is_binary(instance) and :persistent_term.get(key(instance), nil) do
      settings when is_list(settings) ->
        case Enum.reject(needed, &settings[&1]) do
          [] ->
            {:ok, settings}

          missing ->
            {:error,
             "uro_reco instance #{instance} has no #{inspect(missing)} in its jobs: options"}
        end

      _ ->
        {:error,
         "no uro_reco jobs registered for instance #{inspect(instance)} (job arg \"instance\"): " <>
           "start UroReco with jobs: [...] or call UroReco.Jobs.register/2"}
    end
  end

  # The machine's temporary directory at registration, not at compile time.
  defp with_workdir(opts) do
    case opts[:training] do
      nil ->
        opts

      training ->
        Keyword.put(opts, :training, Keyword.put_new(training, :workdir, System.tmp_dir!()))
    end
  end

  defp key(instance), do: {__MODULE__, instance}
end
