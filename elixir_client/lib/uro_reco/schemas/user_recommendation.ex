if Code.ensure_loaded?(Ecto.Schema) do
  defmodule UroReco.Schemas.UserRecommendation do
    @moduledoc """
    The precomputed recommendations of one user, refreshed by
    `UroReco.Workers.BatchRecommend` and valid until `expires_at`.

    `item_ids` and `scores` are parallel arrays in rank order (CockroachDB has no
    arrays of JSONB). `experiment` and `arm` name the experiment arm that answered
    the user (`nil` outside experiments); `model`/`version` are that arm's.
    `reasons`, when the job asked for them (`explain`), is parallel to `item_ids`:
    each item's reasons as maps with `"item_id"`, `"contribution"` and `"share"`,
    largest first; `nil` when no item has one. It is one JSONB value (a JSON
    array), which CockroachDB stores as PostgreSQL does.
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
      field :reasons, {:array, {:array, :map}}
      field :expires_at, :utc_datetime_usec

      timestamps(type: :utc_datetime_usec)
    end
  end
end
