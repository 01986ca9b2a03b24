defmodule UroReco.Backoff do
  @moduledoc """
  Exponential backoff with jitter, shared by sidecar restarts and client retries.

  The delay for attempt `n` (0-based) lies between half and all of
  `min(max, min * 2^n)` milliseconds, so a crowd of retrying callers spreads out.
  """

  @enforce_keys [:min, :max]
  defstruct [:min, :max]

  @type t :: %__MODULE__{min: pos_integer(), max: pos_integer()}

  @doc "A backoff from `min` to `max` milliseconds."
  @spec new(pos_integer(), pos_integer()) :: t()
  def new(min, max) when is_integer(min) and is_integer(max) and min > 0 and max >= min do
    %__MODULE__{min: min, max: max}
  end

  @doc "The delay in milliseconds before attempt `attempt` (0-based)."
  @spec delay(t(), non_neg_integer()) :: pos_integer()
  def delay(%__MODULE__{min: min, max: max}, attempt) when is_integer(attempt) and attempt >= 0 do
    ceiling = min(max, min * Integer.pow(2, min(attempt, 32)))
    half = div(ceiling, 2)
    half + :rand.uniform(ceiling - half)
  end
end
