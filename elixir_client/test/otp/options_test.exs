defmodule UroReco.OptionsTest do
  use ExUnit.Case, async: true

  alias UroReco.Options

  @moduletag :otp

  test "defaults are filled in and given values kept" do
    opts = Options.validate!(:upsert, timeout: 5_000)
    assert opts[:timeout] == 5_000
    assert opts[:rows_per_statement] == 1_000

    batch = Options.validate!(:batch, n: 7)
    assert batch[:n] == 7 and batch[:max_users_per_call] == 5_000 and batch[:db_timeout] == 60_000
  end

  test "each bad value is refused naming the option and what it accepts" do
    for {schema, opts, message} <- [
          {:upsert, [rows_per_statement: 5_042], ~r/:rows_per_statement .* 1\.\.5041/},
          {:upsert, [rows_per_statement: 0], ~r/:rows_per_statement/},
          {:upsert, [timeout: -1], ~r/:timeout .* :infinity/},
          {:batch, [n: "50"], ~r/:n for batch must be a positive integer, got: "50"/},
          {:batch, [users: 3], ~r/unknown option :users for batch/},
          {:channel_pool, [addresses: []], ~r/option :name is required/},
          {:channel_pool, [name: :p, addresses: [1]], ~r/:addresses .* list of strings/},
          {:channel_pool, [name: :p, backoff: {10, 1}], ~r/:backoff/},
          {:uro_reco, [name: nil], ~r/:name/},
          {:batch, :not_a_list, ~r/keyword list/}
        ] do
      error = assert_raise ArgumentError, fn -> Options.validate!(schema, opts) end
      assert error.message =~ message, error.message
    end
  end

  test "the row limit is PostgreSQL's 65,535 parameters over 13 columns" do
    assert Options.validate!(:upsert, rows_per_statement: 5_041)[:rows_per_statement] == 5_041
  end

  test "the jobs' nested settings are checked, errors naming the inner option" do
    jobs = Options.validate!(:jobs, repo: My.Repo, batch: [explain: 3])
    assert jobs[:oban] == Oban and jobs[:batch][:explain] == 3 and jobs[:batch][:n] == 50
    refute Keyword.has_key?(jobs, :training)

    for {opts, message} <- [
          {[batch: []], ~r/option :repo is required for jobs/},
          {[repo: My.Repo, batch: [explain: 21]], ~r/:explain for batch .* 0\.\.20, got: 21/},
          {[repo: My.Repo, batch: :fast], ~r/:batch for jobs must be a keyword list/},
          {[repo: My.Repo, training: [model: "posts"]], ~r/:model_root is required for training/},
          {[repo: My.Repo, training: [model_root: "/m", model: "p", gpu: 1]],
           ~r/unknown option :gpu for training/}
        ] do
      error = assert_raise ArgumentError, fn -> Options.validate!(:jobs, opts) end
      assert error.message =~ message, error.message
    end
  end
end
