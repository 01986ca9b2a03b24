# Two definitions, chosen when the client is compiled: the macros of
# OpenTelemetry.Tracer cannot even be expanded without opentelemetry_api.
if Code.ensure_loaded?(OpenTelemetry.Tracer) do
  defmodule UroReco.Tracing do
    @moduledoc """
    OpenTelemetry for the client, compiled in only when the application depends
    on `opentelemetry_api` (an optional dependency of `:uro_reco`).

    With it, every `UroReco.Client` call opens a client span named
    `reco.v1.Recommender/<Method>` (attributes from OpenTelemetry's RPC semantic
    conventions: `rpc.system` `grpc`, `rpc.service` `reco.v1.Recommender`,
    `rpc.method`, `rpc.grpc.status_code`; span status error on any non-OK
    status) as a child of the caller's current span, and sends the context as
    W3C `traceparent`/`tracestate` gRPC metadata through the configured text map
    propagator, so the sidecar's server span joins the caller's trace.

    `UroReco.Workers.BatchRecommend` jobs follow opentelemetry_oban: the trace
    context of whoever enqueued the job travels in the job's `meta` (the
    `traceparent`/`tracestate` keys `OpentelemetryOban.insert/2` and
    `job_meta/0` write), and the job runs in a consumer span `<worker> process`
    of its own trace, with a span *link* to that context (a job may run long
    after, or many times for, the request that enqueued it). When
    opentelemetry_oban's handler has already opened the job's span, the job uses
    that span and opens none.

    Without `opentelemetry_api` these functions are compiled to plain calls: no
    span, no metadata, no lookup at runtime.
    """

    require OpenTelemetry.Tracer, as: Tracer

    @service "reco.v1.Recommender"

    @doc false
    # Runs one client call in a client span. `call` gets the trace context as
    # gRPC metadata and returns `{:ok, _}` or `{:error, %UroReco.Error{}}`.
    @spec client_span(atom(), (map() -> result)) :: result when result: term()
    def client_span(rpc, call) do
      method = method(rpc)

      attributes = %{
        "rpc.system": "grpc",
        "rpc.service": @service,
        "rpc.method": method
      }

      Tracer.with_span "#{@service}/#{method}", %{kind: :client, attributes: attributes} do
        result = call.(Map.new(:otel_propagator_text_map.inject([])))
        record(result)
        result
      end
    end

    @doc """
    The current trace context as Oban job meta (`%{"traceparent" => …}`), to
    merge into a job's `:meta` when enqueueing without opentelemetry_oban:

        Oban.insert(UroReco.Workers.BatchRecommend.new(args, meta: UroReco.Tracing.job_meta()))
    """
    @spec job_meta() :: %{optional(String.t()) => String.t()}
    def job_meta, do: Map.new(:otel_propagator_text_map.inject([]))

    @doc false
    # Runs an Oban job's work in a consumer span linked to the context in its meta.
    @spec job_span(map(), (-> result)) :: result when result: term()
    def job_span(job, work) do
      if Tracer.current_span_ctx() != :undefined do
        # opentelemetry_oban (or the caller) already opened the job's span.
        work.()
      else
        parent =
          :otel_ctx.new()
          |> :otel_propagator_text_map.extract_to(Enum.to_list(job.meta || %{}))
          |> Tracer.current_span_ctx()

        links = if parent == :undefined, do: [], else: [OpenTelemetry.link(parent)]

        attributes = %{
          "messaging.system": "oban",
          "messaging.destination.name": to_string(job.queue),
          "oban.job.job_id": job.id,
          "oban.job.worker": job.worker,
          "oban.job.attempt": job.attempt
        }

        Tracer.with_span "#{job.worker} process",
                         %{kind: :consumer, links: links, attributes: attributes} do
          work.()
        end
      end
    end

    defp record({:ok, _}), do: Tracer.set_attribute(:"rpc.grpc.status_code", 0)

    defp record({:error, %UroReco.Error{status: status, message: message}}) do
      Tracer.set_attribute(:"rpc.grpc.status_code", status)
      Tracer.set_status(OpenTelemetry.status(:error, message))
    end

    defp record(_other), do: :ok

    defp method(rpc), do: rpc |> Atom.to_string() |> Macro.camelize()
  end
else
  defmodule UroReco.Tracing do
    @moduledoc "No-op `UroReco.Tracing`: this application does not depend on `opentelemetry_api`."

    @doc false
    def client_span(_rpc, call), do: call.(%{})

    @doc "The current trace context as Oban job meta: empty without `opentelemetry_api`."
    def job_meta, do: %{}

    @doc false
    def job_span(_job, work), do: work.()
  end
end
