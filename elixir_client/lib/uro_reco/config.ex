defmodule UroReco.Config do
  @moduledoc """
  Application settings the Oban workers read (they get only job args):

      config :uro_reco,
        repo: Uro.Repo,
        channel_pool: Uro.Reco.Channels,
        oban: Oban,
        batch: [n: 50, ttl_seconds: 86_400, page_size: 500, timeout: 120_000,
                users_per_message: 100, max_users_per_call: 5_000,
                rows_per_statement: 1_000, db_timeout: 60_000],
        training: [model_root: "/srv/reco/models", model: "posts", python: "python3",
                   workdir: "/srv/reco/tmp"]
  """

  @doc "The Ecto repo holding `user_interactions` and `user_recommendations`."
  @spec repo() :: module()
  def repo, do: Application.fetch_env!(:uro_reco, :repo)

  @doc "The `UroReco.ChannelPool` name to call the sidecar through."
  @spec channel_pool() :: atom()
  def channel_pool, do: Application.fetch_env!(:uro_reco, :channel_pool)

  @doc "The Oban instance follow-up jobs go to (default `Oban`)."
  @spec oban() :: term()
  def oban, do: Application.get_env(:uro_reco, :oban, Oban)

  @doc "Batch refresh settings, checked by `UroReco.Options`, defaults filled in."
  @spec batch() :: keyword()
  def batch, do: UroReco.Options.validate!(:batch, Application.get_env(:uro_reco, :batch, []))

  @doc "Training settings: `:model_root`, `:model`, `:python`, `:workdir`."
  @spec training() :: keyword()
  def training do
    Keyword.merge(
      [python: "python3", workdir: System.tmp_dir!()],
      Application.fetch_env!(:uro_reco, :training)
    )
  end
end
