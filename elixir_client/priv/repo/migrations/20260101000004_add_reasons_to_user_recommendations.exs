defmodule UroReco.Repo.Migrations.AddReasonsToUserRecommendations do
  # Each item's reasons, when the batch job asks for them (`explain`): one JSONB
  # value holding a list parallel to `item_ids`, each a list of
  # {"item_id", "contribution", "share"} objects. One JSONB column, not an
  # array of JSONB: CockroachDB supports JSONB but no arrays of it. Nullable and
  # without a default, like the arm columns: neither PostgreSQL nor CockroachDB
  # rewrites or backfills the table to add it.
  use Ecto.Migration

  def change do
    alter table(:user_recommendations) do
      add :reasons, :jsonb
    end
  end
end
