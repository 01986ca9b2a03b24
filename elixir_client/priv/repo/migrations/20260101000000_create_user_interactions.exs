defmodule UroReco.Repo.Migrations.CreateUserInteractions do
  use Ecto.Migration

  def change do
    create table(:user_interactions, primary_key: false) do
      add :id, :binary_id, primary_key: true
      add :user_id, :binary_id, null: false
      add :post_id, :binary_id, null: false
      add :interaction_type, :string, null: false
      add :created_at, :utc_datetime_usec, null: false
    end

    create constraint(:user_interactions, :interaction_type_known,
             check: "interaction_type IN ('view', 'click', 'like', 'share')"
           )

    # The batch sweep pages through distinct users; training reads by time.
    create index(:user_interactions, [:user_id, :created_at])
    create index(:user_interactions, [:created_at])
  end
end
