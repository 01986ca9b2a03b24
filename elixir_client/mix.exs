defmodule UroReco.MixProject do
  use Mix.Project

  def project do
    [
      app: :uro_reco,
      version: "0.1.0",
      # grpc 1.0 needs googleapis 0.1, which requires Elixir ~> 1.18.
      elixir: "~> 1.18",
      elixirc_paths: elixirc_paths(Mix.env()),
      start_permanent: Mix.env() == :prod,
      deps: deps()
    ]
  end

  def application do
    [extra_applications: [:logger, :crypto]]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  defp deps do
    [
      {:grpc, "~> 1.0"},
      {:gun, "~> 2.4"},
      {:protobuf, "~> 0.17"},
      {:jason, "~> 1.4"},
      {:telemetry, "~> 1.2"},
      {:oban, "~> 2.23", optional: true},
      {:ecto_sql, "~> 3.12", optional: true},
      {:postgrex, "~> 0.19", optional: true},
      {:flame, "~> 0.5", optional: true},
      # Client spans and W3C trace context in the call metadata (UroReco.Tracing);
      # without it the client compiles no tracing code at all.
      {:opentelemetry_api, "~> 1.5", optional: true},
      # The SDK, for the tests that read the spans back.
      {:opentelemetry, "~> 1.7", only: :test}
    ]
  end
end
