defmodule UroReco.Sidecar.CommandTest do
  use ExUnit.Case, async: true

  alias UroReco.Sidecar.Command

  @moduletag :otp

  @base [model_root: "/srv/models", model: "posts", python: "sh"]

  test "serves on port 0, watches stdin and the BEAM, passes durations in seconds" do
    {exe, args} = Command.build(@base ++ [workers: 3, idle_shutdown_after: 1_500, grace: 5_000])

    assert exe == System.find_executable("sh")

    assert args ==
             ~w(-m reco_sidecar serve --model-root /srv/models --model posts --port 0 --workers 3
                --exit-on-stdin-eof --parent-pid) ++
               [System.pid(), "--idle-shutdown-after", "1.5", "--grace", "5"]
  end

  test "appends stderr to a file through an exec'ing shell" do
    {exe, [flag, script, name, log, python | rest]} =
      Command.build(@base ++ [stderr: {:file, "/var/log/reco.log"}, extra_args: ["--x"]])

    assert {exe, flag, name, log} == {"/bin/sh", "-c", "sh", "/var/log/reco.log"}
    assert script =~ "exec"
    assert python == System.find_executable("sh")
    assert List.last(rest) == "--x"
  end

  test "requires a model and an interpreter that exists" do
    assert_raise ArgumentError, ~r/:model/, fn -> Command.build(Keyword.delete(@base, :model)) end

    assert_raise ArgumentError, ~r/interpreter/, fn ->
      Command.build(Keyword.put(@base, :python, "no-such-python-here"))
    end
  end
end
