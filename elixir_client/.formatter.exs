[
  inputs: [
    "{mix,.formatter}.exs",
    "{config,lib,test,scripts}/**/*.{ex,exs}",
    "priv/repo/migrations/*.exs"
  ],
  import_deps: [:ecto, :ecto_sql, :protobuf, :grpc]
]
