defmodule UroReco.Sidecar.Ready do
  @moduledoc """
  The line a sidecar prints on stdout once every worker serves:

      {"event": "ready", "port": 50051, "pid": 4242, "workers": 2, "model": "demo",
       "version": 3, "address": "127.0.0.1:50051",
       "worker_addresses": ["127.0.0.1:40001", "127.0.0.1:40002"]}

  `address` is shared by all workers (for grpcurl, ghz, k8s probes); one HTTP/2
  connection reaches one worker only, so clients connect to every entry of
  `worker_addresses`.
  """

  @compile {:no_warn_undefined, Jason}

  @enforce_keys [:address, :port, :os_pid, :worker_addresses, :model, :version]
  defstruct [:address, :port, :os_pid, :worker_addresses, :model, :version, :workers]

  @type t :: %__MODULE__{
          address: String.t(),
          port: :inet.port_number(),
          os_pid: pos_integer(),
          worker_addresses: [String.t(), ...],
          workers: pos_integer(),
          model: String.t(),
          version: integer()
        }

  @doc "Parses a stdout line; anything but a well-formed ready event is an error."
  @spec parse(binary()) :: {:ok, t()} | {:error, term()}
  def parse(line) when is_binary(line) do
    with {:ok, %{"event" => "ready"} = event} <- decode(line) do
      from_event(event)
    else
      {:ok, _other} -> {:error, :not_a_ready_event}
      {:error, reason} -> {:error, {:invalid_json, reason}}
    end
  end

  defp from_event(%{
         "port" => port,
         "pid" => os_pid,
         "workers" => workers,
         "model" => model,
         "version" => version,
         "address" => address,
         "worker_addresses" => [_ | _] = worker_addresses
       })
       when is_integer(port) and port in 1..65_535 and is_integer(os_pid) and os_pid > 0 and
              is_integer(workers) and workers > 0 and is_binary(model) and is_integer(version) and
              is_binary(address) do
    if Enum.all?(worker_addresses, &is_binary/1) do
      {:ok,
       %__MODULE__{
         address: address,
         port: port,
         os_pid: os_pid,
         workers: workers,
         worker_addresses: worker_addresses,
         model: model,
         version: version
       }}
    else
      {:error, {:malformed_ready_event, :worker_addresses}}
    end
  end

  defp from_event(_event), do: {:error, :malformed_ready_event}

  defp decode(line) do
    if Code.ensure_loaded?(Jason) do
      Jason.decode(line)
    else
      UroReco.Sidecar.MiniJSON.decode(line)
    end
  end
end
