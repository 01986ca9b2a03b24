defmodule UroReco do
  @moduledoc """
  The recommendation client as one child of the host application's tree.

      # lib/uro/application.ex
      children = [
        Uro.Repo,
        {UroReco,
         name: Uro.Reco,
         sidecar: [model_root: System.fetch_env!("RECO_MODEL_ROOT"), model: "posts",
                   workers: System.schedulers_online()]},
        ...
      ]

      {:ok, rec} = UroReco.recommend(Uro.Reco, user.id, n: 20)

  With `:sidecar` it runs the sidecar (`UroReco.Sidecar`, named `<name>.Sidecar`)
  and a `UroReco.ChannelPool` following it; with `discover: "host:port"` or
  `addresses: [...]` it only connects to sidecars running elsewhere. The pool is
  registered as `name`: that is what every `UroReco` and `UroReco.Client`
  function takes. The two are supervised `:rest_for_one`: the pool follows the
  sidecar across OS-process restarts, and must start again if the sidecar's
  server does. `:connect_opts` and `:backoff` go to the pool. A
  `UroReco.Feedback.Buffer` (options in `:feedback_buffer`) serves
  `feedback_async/2`. `:jobs` are the settings of the Oban jobs
  (`UroReco.Jobs`), registered under `name` before anything starts.

  Options are checked by `UroReco.Options` before anything starts.
  """

  use Supervisor

  alias UroReco.{ChannelPool, Client, Feedback, Options, Sidecar}

  @doc false
  def child_spec(opts) do
    %{
      id: {__MODULE__, Keyword.get(opts, :name)},
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor
    }
  end

  @doc "Starts the supervisor (named `<name>.Supervisor`)."
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts) do
    opts = Options.validate!(:uro_reco, opts)
    name = opts[:name]

    case Enum.filter([:sidecar, :discover, :addresses], &Keyword.has_key?(opts, &1)) do
      [_one] ->
        :ok

      given ->
        raise ArgumentError,
              "uro_reco needs exactly one of :sidecar, :discover, :addresses, got: " <>
                inspect(given)
    end

    if jobs = opts[:jobs], do: UroReco.Jobs.register(name, jobs)
    Supervisor.start_link(__MODULE__, opts, name: Module.concat(name, Supervisor))
  end

  @impl true
  def init(opts) do
    name = opts[:name]
    pool_opts = Keyword.take(opts, [:name, :discover, :addresses, :connect_opts, :backoff])
    buffer = {Feedback.Buffer, Keyword.put(Keyword.get(opts, :feedback_buffer, []), :pool, name)}

    children =
      case opts[:sidecar] do
        nil ->
          [{ChannelPool, pool_opts}, buffer]

        sidecar_opts ->
          sidecar = Module.concat(name, Sidecar)

          [
            Supervisor.child_spec({Sidecar, Keyword.put(sidecar_opts, :name, sidecar)},
              restart: :transient
            ),
            {ChannelPool, Keyword.put(pool_opts, :sidecar, sidecar)},
            buffer
          ]
      end

    Supervisor.init(children, strategy: :rest_for_one)
  end

  @doc "The `UroReco.Sidecar` this instance runs (`nil` without `:sidecar`)."
  @spec sidecar(atom()) :: atom() | nil
  def sidecar(name) do
    sidecar = Module.concat(name, Sidecar)
    if Process.whereis(sidecar), do: sidecar
  end

  @doc "See `UroReco.Client.recommend/3`."
  defdelegate recommend(name, user_id, opts \\ []), to: Client

  @doc "See `UroReco.Client.similar/3`."
  defdelegate similar(name, item_id, opts \\ []), to: Client

  @doc "See `UroReco.Client.batch_recommend/3`."
  defdelegate batch_recommend(name, user_ids, opts \\ []), to: Client

  @doc "See `UroReco.Client.status/2`."
  defdelegate status(name, opts \\ []), to: Client

  @doc """
  Records one interaction event with the sidecar and waits for its answer
  (`UroReco.Feedback`): `{:ok, %UroReco.Feedback.Result{}}` or `{:error, %UroReco.Error{}}`.
  """
  @spec feedback(atom(), Feedback.event(), keyword()) ::
          {:ok, Feedback.Result.t()} | {:error, UroReco.Error.t()}
  def feedback(name, event, opts \\ []), do: Feedback.send(name, [event], opts)

  @doc "Records many events, in calls of at most 1,000 (`UroReco.Feedback.send/3`)."
  @spec feedback_batch(atom(), [Feedback.event()], keyword()) ::
          {:ok, Feedback.Result.t()} | {:error, UroReco.Error.t()}
  def feedback_batch(name, events, opts \\ []), do: Feedback.send(name, events, opts)

  @doc """
  Queues one event without waiting (`UroReco.Feedback.Buffer`): `:ok`, or
  `:dropped` (counted) when the buffer is full.
  """
  @spec feedback_async(atom(), Feedback.event()) :: :ok | :dropped
  def feedback_async(name, event), do: Feedback.Buffer.push(name, event)
end
