defmodule UroReco.Repo.Migrations.AddArmToUserRecommendations do
  # The experiment and arm that answered each user, NULL outside experiments.
  # Nullable columns without a default: on CockroachDB (and PostgreSQL) adding
  # them rewrites nothing and backfills nothing, so it runs online. No index:
  # readouts group by arm over a table that batch jobs rewrite anyway.
  use Ecto.Migration

  def change do
    alter table(:user_recommendations) do
      add :experiment, :string
      add :arm, :string
    end
  end
end
