defmodule UroReco.Repo.Migrations.CreateUserRecommendations do
  use Ecto.Migration

  def change do
    create table(:user_recommendations, primary_key: false) do
      add :id, :binary_id, primary_key: true
      add :user_id, :binary_id, null: false
      add :item_ids, {:array, :string}, null: false, default: []
      add :scores, {:array, :float}, null: false, default: []
      add :source, :string, null: false
      add :model, :string, null: false
      add :version, :bigint, null: false
      add :expires_at, :utc_datetime_usec, null: false

      timestamps(type: :utc_datetime_usec)
    end

    # The upsert's conflict target: one row per user.
    create unique_index(:user_recommendations, [:user_id])
    create index(:user_recommendations, [:expires_at])
  end
end
