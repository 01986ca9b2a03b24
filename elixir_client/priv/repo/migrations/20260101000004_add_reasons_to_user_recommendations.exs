defmodule UroReco.Repo.Migrations.AddReasonsToUserRecommendations do
  # Why each stored item was recommended (a JSONB map item id -> reasons), NULL
  # unless the batch job asked for reasons. Nullable without a default: adding it
  # rewrites and backfills nothing, so it runs online.
  use Ecto.Migration

  def change do
    alter table(:user_recommendations) do
      add :reasons, :map
    end
  end
end
