defmodule UroReco.Error do
  @moduledoc """
  A failed call: the gRPC status as an atom (`:not_found`, `:unavailable`, …),
  its number and the server's message.
  """

  defexception [:code, :status, :message]

  @type code ::
          :ok
          | :cancelled
          | :unknown
          | :invalid_argument
          | :deadline_exceeded
          | :not_found
          | :already_exists
          | :permission_denied
          | :resource_exhausted
          | :failed_precondition
          | :aborted
          | :out_of_range
          | :unimplemented
          | :internal
          | :unavailable
          | :data_loss
          | :unauthenticated

  @type t :: %__MODULE__{code: code(), status: 0..16, message: String.t()}

  @codes ~w(ok cancelled unknown invalid_argument deadline_exceeded not_found already_exists
            permission_denied resource_exhausted failed_precondition aborted out_of_range
            unimplemented internal unavailable data_loss unauthenticated)a

  @by_status @codes |> Enum.with_index() |> Map.new(fn {code, status} -> {status, code} end)
  @by_name Map.new(@codes, fn code -> {code |> Atom.to_string() |> String.upcase(), code} end)

  @doc "An error from a gRPC status number; unknown numbers map to `:unknown`."
  @spec from_status(integer(), String.t() | nil) :: t()
  def from_status(status, message) when is_integer(status) do
    code = Map.get(@by_status, status, :unknown)
    %__MODULE__{code: code, status: status(code), message: message || ""}
  end

  @doc ~S'An error from a status name such as `"NOT_FOUND"` (as in `ItemError.code`).'
  @spec from_name(String.t(), String.t() | nil) :: t()
  def from_name(name, message) when is_binary(name) do
    code = Map.get(@by_name, name, :unknown)
    %__MODULE__{code: code, status: status(code), message: message || ""}
  end

  @doc "The status number of a code."
  @spec status(code()) :: 0..16
  def status(code), do: Enum.find_index(@codes, &(&1 == code))

  @impl true
  def message(%__MODULE__{code: code, message: ""}), do: Atom.to_string(code)
  def message(%__MODULE__{code: code, message: message}), do: "#{code}: #{message}"
end
