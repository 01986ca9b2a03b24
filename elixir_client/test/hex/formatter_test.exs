defmodule UroReco.FormatterTest do
  # Needs the hex dependencies: the formatter imports their `locals_without_parens`
  # (`rpc/3` from :grpc_core, `assert_enqueued/1,2` from :oban, Ecto's DSL).
  # Equivalent to `mix format --check-formatted`, as a test.
  use ExUnit.Case, async: true

  @moduletag :hex

  test "the formatter knows the dependencies' DSLs" do
    {_format, opts} = Mix.Tasks.Format.formatter_for_file("lib/uro_reco/v1/reco.pb.ex")
    assert {:rpc, 3} in opts[:locals_without_parens]
    assert {:assert_enqueued, 1} in opts[:locals_without_parens]
    assert {:field, 3} in opts[:locals_without_parens]
  end

  test "every source file is formatted" do
    {_format, opts} = Mix.Tasks.Format.formatter_for_file("mix.exs")

    files = Enum.flat_map(opts[:inputs], &Path.wildcard(&1, match_dot: true))
    assert "lib/uro_reco/v1/reco.pb.ex" in files

    unformatted =
      Enum.reject(files, fn file ->
        {format, _opts} = Mix.Tasks.Format.formatter_for_file(file)
        source = File.read!(file)
        format.(source) == source
      end)

    assert unformatted == []
  end
end
