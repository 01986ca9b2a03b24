defmodule UroReco.Sidecar.MiniJSON do
  @moduledoc """
  A small, strict JSON decoder for the sidecar's ready line.

  `UroReco.Sidecar` runs without hex dependencies, so it cannot count on Jason.
  `UroReco.Sidecar.Ready` uses Jason when it is loaded and this module otherwise.
  Objects decode to maps with string keys, as with Jason's defaults.
  """

  @type json :: nil | boolean() | number() | String.t() | [json()] | %{String.t() => json()}

  @doc "Decodes one JSON document."
  @spec decode(binary()) :: {:ok, json()} | {:error, String.t()}
  def decode(text) when is_binary(text) do
    case value(skip(text)) do
      {:ok, result, rest} ->
        if skip(rest) == "", do: {:ok, result}, else: {:error, "trailing data"}

      {:error, _} = error ->
        error
    end
  end

  defp value("{" <> rest), do: object(skip(rest), %{})
  defp value("[" <> rest), do: array(skip(rest), [])
  defp value("\"" <> rest), do: string(rest, [])
  defp value("true" <> rest), do: {:ok, true, rest}
  defp value("false" <> rest), do: {:ok, false, rest}
  defp value("null" <> rest), do: {:ok, nil, rest}
  defp value(<<c, _::binary>> = text) when c == ?- or c in ?0..?9, do: number(text)
  defp value(_), do: {:error, "unexpected input"}

  defp object("}" <> rest, acc), do: {:ok, acc, rest}

  defp object("\"" <> rest, acc) do
    with {:ok, key, rest} <- string(rest, []),
         ":" <> rest <- skip(rest),
         {:ok, val, rest} <- value(skip(rest)) do
      case skip(rest) do
        "," <> rest -> object_key(skip(rest), Map.put(acc, key, val))
        "}" <> rest -> {:ok, Map.put(acc, key, val), rest}
        _ -> {:error, "expected , or } in object"}
      end
    else
      {:error, _} = error -> error
      _ -> {:error, "expected : in object"}
    end
  end

  defp object(_, _), do: {:error, "expected key in object"}

  defp object_key("\"" <> _ = text, acc), do: object(text, acc)
  defp object_key(_, _), do: {:error, "expected key in object"}

  defp array("]" <> rest, acc), do: {:ok, Enum.reverse(acc), rest}

  defp array(text, acc) do
    with {:ok, val, rest} <- value(text) do
      case skip(rest) do
        "," <> rest -> array_item(skip(rest), [val | acc])
        "]" <> rest -> {:ok, Enum.reverse([val | acc]), rest}
        _ -> {:error, "expected , or ] in array"}
      end
    end
  end

  defp array_item("]" <> _, _), do: {:error, "trailing comma in array"}
  defp array_item(text, acc), do: array(text, acc)

  defp string("\"" <> rest, acc), do: {:ok, IO.iodata_to_binary(Enum.reverse(acc)), rest}

  defp string("\\u" <> <<code::binary-size(4), rest::binary>>, acc) do
    with {:ok, c} <- hex(code),
         {:ok, c, rest} <- surrogate_pair(c, rest) do
      string(rest, [<<c::utf8>> | acc])
    end
  end

  defp string("\\" <> <<c, rest::binary>>, acc) do
    case c do
      ?" -> string(rest, ["\"" | acc])
      ?\\ -> string(rest, ["\\" | acc])
      ?/ -> string(rest, ["/" | acc])
      ?b -> string(rest, ["\b" | acc])
      ?f -> string(rest, ["\f" | acc])
      ?n -> string(rest, ["\n" | acc])
      ?r -> string(rest, ["\r" | acc])
      ?t -> string(rest, ["\t" | acc])
      _ -> {:error, "bad escape in string"}
    end
  end

  defp string(<<c::utf8, rest::binary>>, acc) when c >= 0x20,
    do: string(rest, [<<c::utf8>> | acc])

  defp string(_, _), do: {:error, "unterminated or invalid string"}

  defp surrogate_pair(high, "\\u" <> <<code::binary-size(4), rest::binary>>)
       when high in 0xD800..0xDBFF do
    case hex(code) do
      {:ok, low} when low in 0xDC00..0xDFFF ->
        {:ok, 0x10000 + Bitwise.bsl(high - 0xD800, 10) + (low - 0xDC00), rest}

      _ ->
        {:error, "bad surrogate pair in string"}
    end
  end

  defp surrogate_pair(c, _rest) when c in 0xD800..0xDFFF, do: {:error, "lone surrogate in string"}
  defp surrogate_pair(c, rest), do: {:ok, c, rest}

  defp hex(digits) do
    case Integer.parse(digits, 16) do
      {n, ""} -> {:ok, n}
      _ -> {:error, "bad \\u escape"}
    end
  end

  defp number(text) do
    [literal] = Regex.run(~r/\A-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/, text) || [""]
    rest = binary_part(text, byte_size(literal), byte_size(text) - byte_size(literal))

    cond do
      literal in ["", "-"] -> {:error, "bad number"}
      String.contains?(literal, [".", "e", "E"]) -> {:ok, float(literal), rest}
      true -> {:ok, String.to_integer(literal), rest}
    end
  end

  # "1e5" is valid JSON but not a valid Elixir float literal: give it a fraction.
  defp float(literal) do
    literal
    |> String.replace(~r/\A(-?\d+)([eE])/, "\\1.0\\2")
    |> String.to_float()
  end

  defp skip(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: skip(rest)
  defp skip(text), do: text
end
