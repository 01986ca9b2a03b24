[
  inputs: [
    "{mix,.formatter}.exs",
    "{config,lib,test,scripts}/**/*.{ex,exs}",
    "priv/repo/migrations/*.exs"
  ],
  # rpc/3 comes from :grpc_core in grpc 1.0; assert_enqueued/2 from :oban.
  import_deps: [:ecto, :ecto_sql, :protobuf, :grpc_core, :oban]
]
