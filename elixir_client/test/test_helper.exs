# `mix test` runs every test but the :db ones, which need PostgreSQL or CockroachDB
# at DATABASE_URL: `mix test --include db`. The :otp tests also run without hex
# packages through scripts/test_otp.sh.
ExUnit.start(exclude: [:db])
