defmodule UroReco.TracingTest do
  # Needs the hex dependencies, with opentelemetry_api and the opentelemetry SDK.
  use ExUnit.Case, async: false
  use Oban.Testing, repo: UroReco.TestRepo

  require OpenTelemetry.Tracer, as: Tracer
  require Record

  alias UroReco.{Client, Error, TestRepo, Tracing}
  alias UroReco.Workers.BatchRecommend

  @moduletag :hex
  @moduletag timeout: 180_000

  for {name, fields} <- Record.extract_all(from_lib: "opentelemetry/include/otel_span.hrl"),
      name in [:span, :link] do
    Record.defrecordp(name, fields)
  end

  setup do
    # Spans ended from here on come to this test process.
    :otel_simple_processor.set_exporter(:otel_exporter_pid, self())

    dir = UroReco.Test.SidecarHelpers.tmp_dir!("uro_reco_tracing")
    on_exit(fn -> File.rm_rf!(dir) end)
    UroReco.Test.ServedModel.start!(dir)
  end

  test "a Recommend is a client span inside the caller's trace, with the RPC attributes",
       %{pool: pool, user_id: user} do
    {parent_trace, parent_span} =
      Tracer.with_span "uro request" do
        assert {:ok, %{items: [_ | _]}} = Client.recommend(pool, user, n: 3)
        ctx = Tracer.current_span_ctx()
        {OpenTelemetry.Span.trace_id(ctx), OpenTelemetry.Span.span_id(ctx)}
      end

    assert_receive {:span, span(name: "reco.v1.Recommender/Recommend") = client}, 5_000
    assert span(client, :kind) == :client
    assert span(client, :trace_id) == parent_trace
    assert span(client, :parent_span_id) == parent_span

    assert %{
             "rpc.system": "grpc",
             "rpc.service": "reco.v1.Recommender",
             "rpc.method": "Recommend",
             "rpc.grpc.status_code": 0
           } = :otel_attributes.map(span(client, :attributes))

    assert span(client, :status) == :undefined
  end

  test "a failed call records its gRPC status and an error status", %{pool: pool} do
    assert {:error, %Error{code: :not_found, status: 5}} =
             Client.recommend(pool, "nobody", disable_fallback: true)

    assert_receive {:span, span(name: "reco.v1.Recommender/Recommend") = client}, 5_000
    assert %{"rpc.grpc.status_code": 5} = :otel_attributes.map(span(client, :attributes))
    assert {:status, :error, message} = span(client, :status)
    assert message =~ "nobody"
  end

  test "every RPC gets its own method name", %{pool: pool} do
    assert {:ok, _status} = Client.status(pool)
    assert_receive {:span, span(name: "reco.v1.Recommender/GetModelStatus") = client}, 5_000
    assert %{"rpc.method": "GetModelStatus"} = :otel_attributes.map(span(client, :attributes))
  end

  test "the call's metadata carries the client span as a W3C traceparent" do
    metadata = Tracing.client_span(:recommend, fn metadata -> {:ok, metadata} end)
    assert {:ok, %{"traceparent" => traceparent}} = metadata

    assert_receive {:span, span(name: "reco.v1.Recommender/Recommend") = client}, 5_000
    trace_id = span(client, :trace_id) |> Integer.to_string(16) |> String.pad_leading(32, "0")
    span_id = span(client, :span_id) |> Integer.to_string(16) |> String.pad_leading(16, "0")

    assert String.downcase("00-#{trace_id}-#{span_id}-01") == traceparent
  end

  test "a job runs in a consumer span linked to the context its meta carries" do
    {enqueuer_trace, enqueuer_span, meta} =
      Tracer.with_span "enqueue" do
        ctx = Tracer.current_span_ctx()
        {OpenTelemetry.Span.trace_id(ctx), OpenTelemetry.Span.span_id(ctx), Tracing.job_meta()}
      end

    assert %{"traceparent" => _} = meta
    job = %{meta: meta, queue: "recommendations", id: 7, worker: "W", attempt: 1}
    assert :ran = Tracing.job_span(job, fn -> :ran end)

    assert_receive {:span, span(name: "W process") = consumer}, 5_000
    assert span(consumer, :kind) == :consumer
    # Its own trace, linked to the enqueuer's (as opentelemetry_oban does).
    refute span(consumer, :trace_id) == enqueuer_trace

    assert [link(trace_id: ^enqueuer_trace, span_id: ^enqueuer_span)] =
             :otel_links.list(span(consumer, :links))

    assert %{"oban.job.job_id": 7, "messaging.system": "oban"} =
             :otel_attributes.map(span(consumer, :attributes))
  end

  test "a job inside an open span (opentelemetry_oban's) opens none of its own" do
    Tracer.with_span "oban job" do
      job = %{meta: %{}, queue: "recommendations", id: 8, worker: "W", attempt: 1}
      assert :ran = Tracing.job_span(job, fn -> :ran end)
    end

    assert_receive {:span, span(name: "oban job")}, 5_000
    refute_received {:span, span(name: "W process")}
  end

  describe "with a database" do
    @describetag :db

    setup %{pool: pool} do
      start_supervised!(TestRepo)
      migrations = Ecto.Migrator.migrations_path(TestRepo)
      Ecto.Migrator.run(TestRepo, migrations, :up, all: true, log: false)
      start_supervised!({Oban, repo: TestRepo, testing: :manual})
      # The job's settings, as the host gives them (the library reads no application env).
      UroReco.Jobs.register(UroReco, repo: TestRepo, channel_pool: pool)
      on_exit(fn -> UroReco.Jobs.unregister(UroReco) end)
      :ok
    end

    test "a BatchRecommend job's calls are client spans inside its consumer span, linked to the enqueuer" do
      {enqueuer_trace, meta} =
        Tracer.with_span "enqueue" do
          {OpenTelemetry.Span.trace_id(Tracer.current_span_ctx()), Tracing.job_meta()}
        end

      users = [Ecto.UUID.generate(), Ecto.UUID.generate()]
      assert :ok = perform_job(BatchRecommend, %{"user_ids" => users}, meta: meta)

      assert_receive {:span, span(name: "UroReco.Workers.BatchRecommend process") = job}, 5_000
      assert [link(trace_id: ^enqueuer_trace)] = :otel_links.list(span(job, :links))
      assert_received {:span, span(name: "reco.v1.Recommender/BatchRecommend") = call}
      assert span(call, :trace_id) == span(job, :trace_id)
      assert span(call, :parent_span_id) == span(job, :span_id)
    end
  end
end
