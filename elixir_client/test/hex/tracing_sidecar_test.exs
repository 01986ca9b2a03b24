defmodule UroReco.TracingSidecarTest do
  # Needs the hex dependencies, with opentelemetry_api and the opentelemetry SDK,
  # and a sidecar with tracing on (`--otlp-endpoint`).
  use ExUnit.Case, async: false

  require OpenTelemetry.Tracer, as: Tracer
  require Record

  import UroReco.Test.SidecarHelpers

  alias UroReco.Client

  @moduletag :hex
  @moduletag timeout: 180_000

  Record.defrecordp(:span, Record.extract(:span, from_lib: "opentelemetry/include/otel_span.hrl"))

  setup do
    :otel_simple_processor.set_exporter(:otel_exporter_pid, self())

    dir = tmp_dir!("uro_reco_tracing_sidecar")
    on_exit(fn -> File.rm_rf!(dir) end)

    # Tracing on, towards a port nothing listens on: the sidecar's spans are
    # dropped by its exporter, but its log lines carry their trace and span ids.
    {:ok, socket} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, dead} = :inet.port(socket)
    :ok = :gen_tcp.close(socket)
    args = ["--otlp-endpoint", "http://127.0.0.1:#{dead}", "--access-log", "on"]

    Map.put(UroReco.Test.ServedModel.start!(dir, args), :log, Path.join(dir, "sidecar.log"))
  end

  test "the sidecar serves a Recommend in the client span's trace, in a span of its own",
       %{pool: pool, user_id: user, log: log} do
    request_id = Base.encode16(:crypto.strong_rand_bytes(8), case: :lower)

    Tracer.with_span "uro request" do
      assert {:ok, %{items: [_ | _]}} = Client.recommend(pool, user, n: 3, request_id: request_id)
    end

    assert_receive {:span, span(name: "reco.v1.Recommender/Recommend") = client}, 5_000
    trace_id = hex(span(client, :trace_id), 32)
    client_span_id = hex(span(client, :span_id), 16)

    eventually(fn -> access_line(log, request_id) end, "the access line of #{request_id}")
    line = access_line(log, request_id)

    assert %{"trace_id" => ^trace_id, "span_id" => server_span_id} = line
    assert server_span_id =~ ~r/^[0-9a-f]{16}$/
    refute server_span_id == client_span_id
  end

  defp access_line(log, request_id) do
    log
    |> File.read!()
    |> String.split("\n", trim: true)
    |> Enum.find_value(fn line ->
      case Jason.decode(line) do
        {:ok, %{"event" => "rpc", "request_id" => ^request_id} = event} -> event
        _ -> nil
      end
    end)
  end

  defp hex(id, width),
    do: id |> Integer.to_string(16) |> String.downcase() |> String.pad_leading(width, "0")
end
