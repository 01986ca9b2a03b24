defmodule UroReco.TestRepo do
  @moduledoc "The repo of the :db tests (see config/test.exs)."
  use Ecto.Repo, otp_app: :uro_reco, adapter: Ecto.Adapters.Postgres
end
