defmodule UroReco.Sidecar.ReadyTest do
  use ExUnit.Case, async: true

  alias UroReco.Sidecar.{MiniJSON, Ready}

  @moduletag :otp

  @line ~s({"event": "ready", "port": 50051, "pid": 4242, "workers": 2, "model": "demo", ) <>
          ~s("version": 3, "address": "127.0.0.1:50051", ) <>
          ~s("worker_addresses": ["127.0.0.1:40001", "127.0.0.1:40002"]})

  test "parses the ready line" do
    assert {:ok, ready} = Ready.parse(@line)

    assert ready == %Ready{
             address: "127.0.0.1:50051",
             port: 50051,
             os_pid: 4242,
             workers: 2,
             model: "demo",
             version: 3,
             worker_addresses: ["127.0.0.1:40001", "127.0.0.1:40002"]
           }
  end

  test "rejects other events, malformed fields and non-JSON" do
    assert {:error, :not_a_ready_event} = Ready.parse(~s({"event": "draining"}))

    assert {:error, :malformed_ready_event} =
             Ready.parse(String.replace(@line, "50051,", "\"x\","))

    assert {:error, :malformed_ready_event} =
             Ready.parse(String.replace(@line, ~s("pid": 4242, ), ""))

    assert {:error, {:malformed_ready_event, :worker_addresses}} =
             Ready.parse(String.replace(@line, ~s("127.0.0.1:40002"), "7"))

    assert {:error, {:invalid_json, _}} = Ready.parse("ready on 50051")
  end

  describe "MiniJSON" do
    test "decodes what Jason decodes" do
      text =
        ~s( {"a": [1, -2.5, 3e2, 0.5E-1, true, false, null], "b": {"c": "d\\"e\\\\f\\/\\n\\t"},) <>
          ~s( "u": "\\u00e9\\ud83d\\ude00", "e": {}, "l": []} )

      assert MiniJSON.decode(text) ==
               {:ok,
                %{
                  "a" => [1, -2.5, 300.0, 0.05, true, false, nil],
                  "b" => %{"c" => "d\"e\\f/\n\t"},
                  "u" => "é😀",
                  "e" => %{},
                  "l" => []
                }}
    end

    test "rejects what is not JSON" do
      for bad <- [
            "",
            "{",
            "[1,]",
            ~s({"a":1,}),
            ~s({"a" 1}),
            ~s({a: 1}),
            "01",
            "1 2",
            "-",
            ~s("\\ud800"),
            ~s("\\x"),
            ~s("tab\there"),
            "nul",
            ~s("open)
          ] do
        assert {:error, _} = MiniJSON.decode(bad), "accepted #{inspect(bad)}"
      end
    end
  end
end
