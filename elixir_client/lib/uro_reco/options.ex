defmodule UroReco.Options do
  @moduledoc """
  Every option `:uro_reco` takes is checked here, before anything starts or is
  sent: an unknown option, or a value of the wrong kind, raises `ArgumentError`
  naming the option and what it accepts.
  """

  @type kind ::
          :atom
          | :name
          | :pos_integer
          | :non_neg_integer
          | :timeout
          | :string
          | :keyword
          | :backoff
          | {:strings}
          | {:in, [term()]}
          | {:max, pos_integer()}
          | {:between, integer(), integer()}
          | {:schema, atom()}
          | :any

  @type schema :: [
          {atom(), {:required, kind()} | {:default, term(), kind()} | {:optional, kind()}}
        ]

  @schemas %{
    uro_reco: [
      name: {:required, :name},
      sidecar: {:optional, :keyword},
      discover: {:optional, :string},
      addresses: {:optional, {:strings}},
      connect_opts: {:optional, :keyword},
      backoff: {:optional, :backoff},
      feedback_buffer: {:optional, :keyword},
      jobs: {:optional, {:schema, :jobs}}
    ],
    channel_pool: [
      name: {:required, :name},
      sidecar: {:optional, :any},
      discover: {:optional, :string},
      addresses: {:optional, {:strings}},
      connect_opts: {:default, [adapter: GRPC.Client.Adapters.Gun], :keyword},
      backoff: {:default, {100, 5_000}, :backoff}
    ],
    batch: [
      n: {:default, 50, :pos_integer},
      ttl_seconds: {:default, 86_400, :pos_integer},
      page_size: {:default, 500, :pos_integer},
      timeout: {:default, 120_000, :timeout},
      users_per_message: {:default, 100, :pos_integer},
      max_users_per_call: {:default, 5_000, :pos_integer},
      rows_per_statement: {:default, 1_000, {:max, div(65_535, 13)}},
      db_timeout: {:default, 60_000, :timeout},
      explain: {:default, 0, {:between, 0, 20}}
    ],
    jobs: [
      repo: {:required, :name},
      channel_pool: {:optional, :name},
      oban: {:default, Oban, :any},
      batch: {:default, [], {:schema, :batch}},
      training: {:optional, {:schema, :training}}
    ],
    training: [
      model_root: {:required, :string},
      model: {:required, :string},
      python: {:default, "python3", :string},
      workdir: {:optional, :string},
      env: {:optional, :any},
      extra_args: {:optional, {:strings}}
    ],
    upsert: [
      rows_per_statement: {:default, 1_000, {:max, div(65_535, 13)}},
      timeout: {:default, 60_000, :timeout}
    ]
  }

  @doc "`opts` checked against the named schema, defaults filled in."
  @spec validate!(atom(), keyword()) :: keyword()
  def validate!(schema_name, opts) do
    schema = Map.fetch!(@schemas, schema_name)

    unless Keyword.keyword?(opts) do
      raise ArgumentError, "#{schema_name} options must be a keyword list, got: #{inspect(opts)}"
    end

    known = Keyword.keys(schema)

    for {key, _} <- opts, key not in known do
      raise ArgumentError,
            "unknown option #{inspect(key)} for #{schema_name} (known: #{inspect(known)})"
    end

    Enum.flat_map(schema, fn {key, spec} -> field(schema_name, key, spec, opts) end)
  end

  defp field(schema_name, key, {:required, kind}, opts) do
    case Keyword.fetch(opts, key) do
      {:ok, value} -> [{key, check!(schema_name, key, kind, value)}]
      :error -> raise ArgumentError, "option #{inspect(key)} is required for #{schema_name}"
    end
  end

  defp field(schema_name, key, {:default, default, kind}, opts),
    do: [{key, check!(schema_name, key, kind, Keyword.get(opts, key, default))}]

  defp field(schema_name, key, {:optional, kind}, opts) do
    case Keyword.fetch(opts, key) do
      {:ok, value} -> [{key, check!(schema_name, key, kind, value)}]
      :error -> []
    end
  end

  # A nested schema (the jobs' `:batch`, `:training`): its own options are
  # checked and its defaults filled in, and errors name the inner option.
  defp check!(schema_name, key, {:schema, inner}, value) do
    unless Keyword.keyword?(value) do
      raise ArgumentError,
            "option #{inspect(key)} for #{schema_name} must be a keyword list, got: " <>
              inspect(value, limit: 10)
    end

    validate!(inner, value)
  end

  defp check!(schema_name, key, kind, value) do
    if valid?(kind, value) do
      value
    else
      raise ArgumentError,
            "option #{inspect(key)} for #{schema_name} must be #{describe(kind)}, got: " <>
              inspect(value, limit: 10)
    end
  end

  defp valid?(:any, _), do: true
  defp valid?(:atom, value), do: is_atom(value)
  defp valid?(:name, value), do: is_atom(value) and value not in [nil, true, false]
  defp valid?(:pos_integer, value), do: is_integer(value) and value > 0
  defp valid?(:non_neg_integer, value), do: is_integer(value) and value >= 0
  defp valid?(:timeout, value), do: value == :infinity or (is_integer(value) and value > 0)
  defp valid?(:string, value), do: is_binary(value) and value != ""
  defp valid?(:keyword, value), do: Keyword.keyword?(value)
  defp valid?({:strings}, value), do: is_list(value) and Enum.all?(value, &is_binary/1)
  defp valid?({:in, values}, value), do: value in values
  defp valid?({:max, max}, value), do: is_integer(value) and value in 1..max
  defp valid?({:between, min, max}, value), do: is_integer(value) and value in min..max

  defp valid?(:backoff, {min, max}),
    do: is_integer(min) and is_integer(max) and min > 0 and min <= max

  defp valid?(:backoff, _), do: false

  defp describe(:any), do: "anything"
  defp describe(:atom), do: "an atom"
  defp describe(:name), do: "a module-like name (atom)"
  defp describe(:pos_integer), do: "a positive integer"
  defp describe(:non_neg_integer), do: "a non-negative integer"
  defp describe(:timeout), do: "a positive integer (ms) or :infinity"
  defp describe(:string), do: "a non-empty string"
  defp describe(:keyword), do: "a keyword list"
  defp describe({:strings}), do: "a list of strings"
  defp describe({:in, values}), do: "one of #{inspect(values)}"
  defp describe({:max, max}), do: "an integer in 1..#{max}"
  defp describe({:between, min, max}), do: "an integer in #{min}..#{max}"
  defp describe(:backoff), do: "{min_ms, max_ms} with 0 < min_ms <= max_ms"
end
