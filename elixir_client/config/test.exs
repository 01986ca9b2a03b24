import Config

# The :db tests (`mix test --include db`) need PostgreSQL or CockroachDB here.
config :uro_reco, UroReco.TestRepo,
  url: System.get_env("DATABASE_URL", "ecto://postgres:postgres@localhost/uro_reco_test"),
  migration_lock: false,
  priv: "priv/repo"

config :uro_reco,
  ecto_repos: [UroReco.TestRepo],
  repo: UroReco.TestRepo,
  channel_pool: UroReco.Test.Channels,
  batch: [n: 5, page_size: 100, timeout: 30_000]

config :logger, level: :warning
