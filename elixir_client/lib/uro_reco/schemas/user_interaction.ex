if Code.ensure_loaded?(Ecto.Schema) do
  defmodule UroReco.Schemas.UserInteraction do
    @moduledoc """
    One thing a user did with a post: the training data.

    Append-only; `created_at` is when it happened.
    """

    use Ecto.Schema

    @primary_key {:id, :binary_id, autogenerate: true}
    @foreign_key_type :binary_id

    @type t :: %__MODULE__{}

    schema "user_interactions" do
      field :user_id, :binary_id
      field :post_id, :binary_id
      field :interaction_type, Ecto.Enum, values: [:view, :click, :like, :share]
      field :created_at, :utc_datetime_usec
    end

    @doc "The interaction types, weakest signal first."
    @spec interaction_types() :: [atom()]
    def interaction_types, do: Ecto.Enum.values(__MODULE__, :interaction_type)
  end
end
