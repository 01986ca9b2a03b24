import Config

# The :db tests (`mix test --include db`) need PostgreSQL or CockroachDB here.
config :uro_reco, UroReco.TestRepo,
  url: System.get_env("DATABASE_URL", "ecto://postgres:postgres@localhost/uro_reco_test"),
  migration_lock: false,
  priv: "priv/repo"

# Ecto's own setting for `mix ecto.create`; the library reads no application env
# (the jobs' settings are registered with UroReco.Jobs in the tests).
config :uro_reco, ecto_repos: [UroReco.TestRepo]

config :logger, level: :warning

# Spans go to the test process that asks for them (otel_exporter_pid), one at a
# time as they end; nothing is exported anywhere else.
config :opentelemetry,
  traces_exporter: :none,
  processors: [{:otel_simple_processor, %{}}]
