defmodule UroReco.ErrorTest do
  use ExUnit.Case, async: true

  alias UroReco.Error

  @moduletag :otp

  test "maps every gRPC status to its code and back" do
    assert %Error{code: :ok, status: 0} = Error.from_status(0, nil)
    assert %Error{code: :invalid_argument, status: 3, message: "n"} = Error.from_status(3, "n")
    assert %Error{code: :not_found, status: 5} = Error.from_status(5, "")
    assert %Error{code: :resource_exhausted, status: 8} = Error.from_status(8, "")
    assert %Error{code: :unavailable, status: 14} = Error.from_status(14, "")
    assert %Error{code: :unauthenticated, status: 16} = Error.from_status(16, "")
    assert %Error{code: :unknown, status: 2} = Error.from_status(42, "")

    for status <- 0..16, do: assert(Error.status(Error.from_status(status, "").code) == status)
  end

  test "maps status names as the sidecar writes them in ItemError" do
    assert %Error{code: :not_found, status: 5, message: "no user"} =
             Error.from_name("NOT_FOUND", "no user")

    assert %Error{code: :deadline_exceeded, status: 4} = Error.from_name("DEADLINE_EXCEEDED", nil)
    assert %Error{code: :unknown} = Error.from_name("SOMETHING_ELSE", nil)
  end

  test "is an exception with a readable message" do
    assert Exception.message(Error.from_status(5, "user u1")) == "not_found: user u1"
    assert Exception.message(Error.from_status(14, nil)) == "unavailable"
  end
end
