if Code.ensure_loaded?(Ecto.Schema) do
  defmodule UroReco.Schemas.UserRecommendation do
    @moduledoc """
    The precomputed recommendations of one user, refreshed by
    `UroReco.Workers.BatchRecommend` and valid until `expires_at`.

    `item_ids` and `scores` are parallel arrays in rank order (CockroachDB has no
    arrays of JSONB). `experiment` and `arm` name the experiment arm that answered
    the user (`nil` outside experiments); `model`/`version` are that arm's.
    """

    use Ecto.Schema

    @primary_key {:id, :binary_id, autogenerate: true}

    @type t :: %__MODULE__{}

    schema "user_recommendations" do
      field :user_id, :binary_id
      field :item_ids, {:array, :string}, default: []
      field :scores, {:array, :float}, default: []
      field :source, :string
      field :model, :string
      field :version, :integer
      field :experiment, :string
      field :arm, :string
      field :expires_at, :utc_datetime_usec

      timestamps(type: :utc_datetime_usec)
    end
  end
end
