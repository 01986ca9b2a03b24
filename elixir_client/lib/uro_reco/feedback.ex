defmodule UroReco.Feedback do
  @moduledoc """
  Interaction events sent to the sidecar's `Feedback` RPC, which updates the
  users' vectors between retrains. The sidecar answers OK only once every event
  is in its journal; a retried `event_id` is counted as a duplicate and changes
  nothing, so a retry is always safe.

  An event is a map (or keyword list) with `:user_id`, `:item_id` and `:type`
  (one of the event types the model was trained with), and optionally
  `:weight` (0: the type's trained weight), `:time` (a `DateTime` or Unix
  seconds; default: when the sidecar receives it) and `:event_id` (default: a
  random one; pass your own, e.g. the interaction row's id, to make replays
  idempotent).

  `send/3` takes any number of events, in calls of at most 1,000 (the
  sidecar's limit per message), one after another within one deadline, and
  returns the summed `%UroReco.Feedback.Result{}`. Each call is a
  `[:uro_reco, :call, *]` span with `rpc: :feedback`, and each answered call
  emits `[:uro_reco, :feedback, :sent]` with `events`, `accepted`, `duplicates`.
  For a caller that must never wait (a Phoenix controller), see
  `UroReco.Feedback.Buffer`.
  """

  alias UroReco.Client.Call
  alias UroReco.{ChannelPool, Error}

  @max_events 1_000

  defmodule Result do
    @moduledoc "What the sidecar recorded: events new to it, and retried ones it already had."
    defstruct accepted: 0, duplicates: 0
    @type t :: %__MODULE__{accepted: non_neg_integer(), duplicates: non_neg_integer()}
  end

  @type event :: map() | keyword()

  @doc "Sends `events`; `opts` are the call options and `:model`."
  @spec send(ChannelPool.pool(), [event()], keyword()) :: {:ok, Result.t()} | {:error, Error.t()}
  def send(pool, events, opts \\ []) when is_list(events) do
    {model, opts} = Keyword.pop(opts, :model, "")
    {call_opts, rest} = Call.split_opts(opts)

    unless rest == [] do
      raise ArgumentError, "unknown options #{inspect(Keyword.keys(rest))} for feedback"
    end

    # Every event is checked before the first is sent.
    messages = events |> Enum.with_index() |> Enum.map(&event!/1)
    send_messages(pool, messages, [model: model] ++ call_opts)
  end

  @doc false
  # Events already checked by event!/1.
  @spec send_messages(ChannelPool.pool(), [map()], keyword()) ::
          {:ok, Result.t()} | {:error, Error.t()}
  def send_messages(pool, messages, opts) do
    {model, opts} = Keyword.pop(opts, :model, "")
    call_opts = Call.fix_deadline(opts, 5_000)

    messages
    |> Enum.chunk_every(@max_events)
    |> Enum.reduce_while({:ok, %Result{}}, fn chunk, {:ok, total} ->
      events = Enum.map(chunk, &struct(Reco.V1.FeedbackEvent, &1))
      request = struct(Reco.V1.FeedbackRequest, model: model, events: events)

      case Call.run(pool, :feedback, request, call_opts, & &1, 5_000) do
        {:ok, %{accepted: accepted, duplicates: duplicates}} ->
          :telemetry.execute(
            [:uro_reco, :feedback, :sent],
            %{events: length(chunk), accepted: accepted, duplicates: duplicates},
            %{pool: pool}
          )

          {:cont,
           {:ok,
            %Result{
              accepted: total.accepted + accepted,
              duplicates: total.duplicates + duplicates
            }}}

        {:error, error} ->
          {:halt, {:error, error}}
      end
    end)
  end

  @doc false
  # One event's fields, checked (ArgumentError naming the field); the protobuf
  # message is built from them only when it is sent.
  @spec event!({event(), non_neg_integer()}) :: map()
  def event!({event, index}) do
    event = if is_list(event), do: Map.new(event), else: event

    unless is_map(event) do
      raise ArgumentError,
            "events[#{index}] must be a map or keyword list, got: #{inspect(event)}"
    end

    known = [:user_id, :item_id, :type, :weight, :time, :event_id]

    for key <- Map.keys(event), key not in known do
      raise ArgumentError, "events[#{index}]: unknown field #{inspect(key)}"
    end

    %{
      user_id: string!(event, :user_id, index),
      item_id: string!(event, :item_id, index),
      type: event |> Map.get(:type) |> type!(index),
      weight: number!(event, :weight, index),
      time: time!(Map.get(event, :time), index),
      event_id:
        Map.get_lazy(event, :event_id, &event_id/0)
        |> then(&string!(%{event_id: &1}, :event_id, index))
    }
  end

  defp string!(event, key, index) do
    case Map.get(event, key) do
      value when is_binary(value) and value != "" ->
        value

      value ->
        raise ArgumentError,
              "events[#{index}].#{key} must be a non-empty string, got: #{inspect(value)}"
    end
  end

  defp type!(type, _index) when is_atom(type) and type not in [nil, true, false],
    do: Atom.to_string(type)

  defp type!(type, _index) when is_binary(type) and type != "", do: type

  defp type!(type, index),
    do:
      raise(
        ArgumentError,
        "events[#{index}].type must be a non-empty string or atom, got: #{inspect(type)}"
      )

  defp number!(event, key, index) do
    case Map.get(event, key, 0) do
      value when is_number(value) ->
        value / 1

      value ->
        raise ArgumentError, "events[#{index}].#{key} must be a number, got: #{inspect(value)}"
    end
  end

  defp time!(nil, _index), do: 0.0
  defp time!(%DateTime{} = at, _index), do: DateTime.to_unix(at, :microsecond) / 1_000_000
  defp time!(seconds, _index) when is_number(seconds) and seconds >= 0, do: seconds / 1

  defp time!(other, index),
    do:
      raise(
        ArgumentError,
        "events[#{index}].time must be a DateTime or Unix seconds, got: #{inspect(other)}"
      )

  defp event_id, do: Base.encode16(:crypto.strong_rand_bytes(12), case: :lower)
end
