defmodule UroReco.BatchWritesTest do
  # Needs the hex dependencies and PostgreSQL at DATABASE_URL (`mix test --include db`).
  # PostgreSQL binds at most 65,535 parameters per statement: a `user_ids` job
  # over 5,461 users used to be one INSERT of 12 columns per user (13 since the
  # reasons) and failed on every retry.
  use ExUnit.Case, async: false
  use Oban.Testing, repo: UroReco.TestRepo

  alias UroReco.Schemas.UserRecommendation
  alias UroReco.Test.ServedModel
  alias UroReco.{Recommendations, TestRepo}
  alias UroReco.Workers.BatchRecommend

  @moduletag :hex
  @moduletag :db
  @moduletag timeout: 600_000

  setup do
    start_supervised!(TestRepo)

    Ecto.Migrator.run(TestRepo, Ecto.Migrator.migrations_path(TestRepo), :up,
      all: true,
      log: false
    )

    TestRepo.delete_all(UserRecommendation)
    :ok
  end

  test "one statement holds at most 65,535 parameters' worth of rows" do
    max = Recommendations.max_rows_per_statement()
    assert max * Recommendations.columns() <= 65_535
    assert (max + 1) * Recommendations.columns() > 65_535

    for bad <- [0, 5_462, "100"] do
      error =
        assert_raise ArgumentError, fn ->
          Recommendations.upsert(TestRepo, [recommendation(Ecto.UUID.generate())], 60,
            rows_per_statement: bad
          )
        end

      assert error.message =~ "rows_per_statement"
    end
  end

  test "100,000 users are written, in statements PostgreSQL accepts, each under :timeout" do
    users = for _ <- 1..100_000, do: Ecto.UUID.generate()
    test = self()
    handler = "count-inserts-#{inspect(test)}"

    :telemetry.attach(handler, [:uro_reco, :test_repo, :query], &count_insert/4, test)
    on_exit(fn -> :telemetry.detach(handler) end)

    written =
      Recommendations.upsert(TestRepo, Enum.map(users, &recommendation/1), 3_600,
        rows_per_statement: 5_041,
        timeout: 120_000
      )

    assert written == 100_000
    assert TestRepo.aggregate(UserRecommendation, :count) == 100_000
    # As few statements as PostgreSQL's limit allows (20 for 13 columns), none refused.
    max = Recommendations.max_rows_per_statement()
    assert insert_statements() == div(100_000 + max - 1, max)

    # Written again (an Oban retry): replaced, not duplicated.
    assert Recommendations.upsert(
             TestRepo,
             Enum.map(Enum.take(users, 6_000), &recommendation/1),
             60
           ) ==
             6_000

    assert TestRepo.aggregate(UserRecommendation, :count) == 100_000
  end

  describe "the user_ids job through a real sidecar" do
    setup do
      dir = UroReco.Test.SidecarHelpers.tmp_dir!("uro_reco_batch_writes")
      on_exit(fn -> File.rm_rf!(dir) end)
      ctx = ServedModel.start!(dir)
      start_supervised!({Oban, repo: TestRepo, testing: :manual})
      ctx
    end

    test "6,000 users: one job, every row written" do
      # Users the model does not know get popular items: one row each all the same.
      users = for _ <- 1..6_000, do: Ecto.UUID.generate()

      UroReco.Jobs.register(UroReco,
        repo: TestRepo,
        channel_pool: UroReco.Test.Channels,
        batch: [
          n: 20,
          timeout: 300_000,
          max_users_per_call: 2_500,
          rows_per_statement: 5_000,
          db_timeout: 120_000
        ]
      )

      on_exit(fn -> UroReco.Jobs.unregister(UroReco) end)

      assert :ok = perform_job(BatchRecommend, %{"user_ids" => users})
      assert TestRepo.aggregate(UserRecommendation, :count) == 6_000

      lengths =
        TestRepo.all(UserRecommendation)
        |> Enum.map(&{length(&1.item_ids), length(&1.scores)})
        |> Enum.uniq()

      assert lengths == [{20, 20}]
    end
  end

  defp recommendation(user_id) do
    %{
      user_id: user_id,
      items: for(rank <- 1..5, do: %{item_id: "item-#{rank}", score: 1.0 / rank, rank: rank}),
      source: :popular,
      model: "demo",
      version: 1,
      experiment: nil,
      arm: nil
    }
  end

  defp count_insert(_event, _measurements, %{source: "user_recommendations", query: query}, test) do
    if String.starts_with?(query, "INSERT"), do: send(test, :insert_statement)
  end

  defp count_insert(_event, _measurements, _meta, _test), do: :ok

  defp insert_statements(count \\ 0) do
    receive do
      :insert_statement -> insert_statements(count + 1)
    after
      0 -> count
    end
  end
end
