defmodule UroReco.BackoffTest do
  use ExUnit.Case, async: true

  alias UroReco.Backoff

  @moduletag :otp

  test "doubles from min, caps at max and keeps at least half of each step" do
    backoff = Backoff.new(100, 1_000)

    for {attempt, ceiling} <- [{0, 100}, {1, 200}, {2, 400}, {3, 800}, {4, 1_000}, {60, 1_000}],
        _ <- 1..50 do
      delay = Backoff.delay(backoff, attempt)
      assert delay in div(ceiling, 2)..ceiling, "attempt #{attempt}: #{delay}"
    end
  end

  test "rejects nonsense bounds" do
    assert_raise FunctionClauseError, fn -> Backoff.new(0, 10) end
    assert_raise FunctionClauseError, fn -> Backoff.new(10, 5) end
  end
end
