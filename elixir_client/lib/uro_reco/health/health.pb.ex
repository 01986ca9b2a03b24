# grpc.health.v1 (grpc/grpc src/proto/grpc/health/v1/health.proto) in the form
# protoc-gen-elixir 0.17 emits, under UroReco's namespace so it cannot clash with
# another copy of the health messages in the host application. The channel pool
# watches each sidecar worker with Health/Watch.

defmodule UroReco.Health.V1.HealthCheckRequest do
  @moduledoc false

  use Protobuf,
    full_name: "grpc.health.v1.HealthCheckRequest",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :service, 1, type: :string
end

defmodule UroReco.Health.V1.HealthCheckResponse.ServingStatus do
  @moduledoc false

  use Protobuf,
    enum: true,
    full_name: "grpc.health.v1.HealthCheckResponse.ServingStatus",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :UNKNOWN, 0
  field :SERVING, 1
  field :NOT_SERVING, 2
  field :SERVICE_UNKNOWN, 3
end

defmodule UroReco.Health.V1.HealthCheckResponse do
  @moduledoc false

  use Protobuf,
    full_name: "grpc.health.v1.HealthCheckResponse",
    protoc_gen_elixir_version: "0.17.0",
    syntax: :proto3

  field :status, 1, type: UroReco.Health.V1.HealthCheckResponse.ServingStatus, enum: true
end

defmodule UroReco.Health.V1.Health.Service do
  @moduledoc false

  use GRPC.Service, name: "grpc.health.v1.Health", protoc_gen_elixir_version: "0.17.0"

  rpc :Check, UroReco.Health.V1.HealthCheckRequest, UroReco.Health.V1.HealthCheckResponse

  rpc :Watch, UroReco.Health.V1.HealthCheckRequest, stream(UroReco.Health.V1.HealthCheckResponse)
end

defmodule UroReco.Health.V1.Health.Stub do
  @moduledoc false

  use GRPC.Stub, service: UroReco.Health.V1.Health.Service
end
