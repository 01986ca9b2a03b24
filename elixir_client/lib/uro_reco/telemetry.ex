defmodule UroReco.Telemetry do
  @moduledoc """
  Every `:telemetry` event `:uro_reco` emits, in one place.

  | event | measurements | metadata |
  |---|---|---|
  | `[:uro_reco, :call, :start]` | `system_time`, `monotonic_time` | `rpc`, `pool`, `request_id` |
  | `[:uro_reco, :call, :stop]` | `duration`, `monotonic_time` | the above and `result` (`:ok`/`:error`), `code` on errors; `experiment`, `arm` for `recommend` |
  | `[:uro_reco, :call, :exception]` | `duration`, `monotonic_time` | the above and `kind`, `reason`, `stacktrace` |
  | `[:uro_reco, :batch, :stored]` | `users` | `experiment`, `arm`, `model`, `version` |
  | `[:uro_reco, :pool, :health]` | `count` (always 1) | `pool`, `address`, `from`, `to` |
  | `[:uro_reco, :feedback, :sent]` | `events`, `accepted`, `duplicates` | `pool` |
  | `[:uro_reco, :feedback, :dropped]` | `count` (always 1) | `pool`, `reason` (`:full` or `:refused`) |

  `[:uro_reco, :call, *]` is a `:telemetry.span/3` around each client call (for
  `batch_recommend/3` each call of the stream, opening it). `[:uro_reco, :batch,
  :stored]` is emitted by `UroReco.Workers.BatchRecommend` after each write,
  once per arm. `[:uro_reco, :pool, :health]` is emitted by
  `UroReco.ChannelPool` whenever a worker's channel changes state: `from` is
  `nil` for a new worker, `to` is `nil` for one the pool no longer connects to
  (the sidecar reported new addresses), else one of `:connecting`, `:serving` (handed out),
  `:not_serving` (the worker said so) and `:suspect` (a caller reported it).
  """

  @events [
    [:uro_reco, :call, :start],
    [:uro_reco, :call, :stop],
    [:uro_reco, :call, :exception],
    [:uro_reco, :batch, :stored],
    [:uro_reco, :pool, :health],
    [:uro_reco, :feedback, :sent],
    [:uro_reco, :feedback, :dropped]
  ]

  @doc "Every event name, for `:telemetry.attach_many/4`."
  @spec events() :: [[atom()]]
  def events, do: @events

  @doc false
  @spec pool_health(atom(), String.t(), atom() | nil, atom()) :: :ok
  def pool_health(pool, address, from, to) do
    :telemetry.execute([:uro_reco, :pool, :health], %{count: 1}, %{
      pool: pool,
      address: address,
      from: from,
      to: to
    })
  end

  @doc false
  @spec batch_stored(non_neg_integer(), map()) :: :ok
  def batch_stored(users, meta),
    do: :telemetry.execute([:uro_reco, :batch, :stored], %{users: users}, meta)
end
