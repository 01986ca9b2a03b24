defmodule UroReco.Recommendation do
  @moduledoc """
  One user's recommendations, from `UroReco.Client.recommend/3` or an element of
  `UroReco.Client.batch_recommend/3`.

    * `items` - `[%{item_id:, score:, rank:}]` in rank order
    * `source` - `:model`, `:fold_in`, `:popular`, `:ann`, `:random` or `:unspecified`
    * `experiment`, `arm` - what answered the user (`nil` outside experiments);
      `model` and `version` are that arm's
    * `index` - the user's position in the `batch_recommend/3` list (`nil` for `recommend/3`)
    * `jsonld` - the schema.org `ItemList` as a map (`nil` unless asked for)
  """

  @enforce_keys [:user_id, :model, :version, :items, :source]
  defstruct [:user_id, :model, :version, :items, :source, :experiment, :arm, :index, :jsonld]

  @type item :: %{item_id: String.t(), score: float(), rank: pos_integer()}

  @type t :: %__MODULE__{
          user_id: String.t(),
          model: String.t(),
          version: integer(),
          items: [item()],
          source:
            :model
            | :fold_in
            | :popular
            | :ann
            | :random
            | :online
            | :online_new_user
            | :unspecified,
          experiment: String.t() | nil,
          arm: String.t() | nil,
          index: non_neg_integer() | nil,
          jsonld: map() | nil
        }
end
