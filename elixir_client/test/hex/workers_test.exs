defmodule UroReco.WorkersTest do
  # Needs the hex dependencies; the :db tests also PostgreSQL or CockroachDB at
  # DATABASE_URL: `mix test --include db`.
  use ExUnit.Case, async: false
  use Oban.Testing, repo: UroReco.TestRepo

  import Ecto.Query

  alias UroReco.Schemas.{UserInteraction, UserRecommendation}
  alias UroReco.Test.ServedModel
  alias UroReco.{Client, TestRepo}
  alias UroReco.Workers.{BatchRecommend, Retrain}

  @moduletag :hex
  @moduletag timeout: 180_000

  setup do
    dir = UroReco.Test.SidecarHelpers.tmp_dir!("uro_reco_workers")
    on_exit(fn -> File.rm_rf!(dir) end)
    ctx = ServedModel.start!(dir)

    UroReco.Jobs.register(UroReco, jobs(ctx, dir))
    on_exit(fn -> UroReco.Jobs.unregister(UroReco) end)
    Map.put(ctx, :dir, dir)
  end

  # The settings the host gives, registered under the default instance.
  defp jobs(ctx, dir, batch \\ []) do
    [
      repo: TestRepo,
      channel_pool: ctx.pool,
      batch: Keyword.merge([n: 5, page_size: 100, timeout: 30_000], batch),
      training: [
        model_root: ctx.sidecar_opts[:model_root],
        model: "demo",
        python: ctx.sidecar_opts[:python],
        env: ctx.sidecar_opts[:env],
        workdir: dir
      ]
    ]
  end

  test "Retrain trains the next version from a CSV and reloads it", %{pool: pool, csv: csv} do
    assert :ok = perform_job(Retrain, %{"interactions" => csv})
    assert {:ok, %{version: 2}} = Client.status(pool)
  end

  # A stable UUID for a demo user id.
  defp uuid(user) do
    {:ok, uuid} = Ecto.UUID.load(:crypto.hash(:md5, user))
    uuid
  end

  describe "with a database" do
    @describetag :db

    setup do
      start_supervised!(TestRepo)

      Ecto.Migrator.run(TestRepo, Ecto.Migrator.migrations_path(TestRepo), :up,
        all: true,
        log: false
      )

      TestRepo.delete_all(UserInteraction)
      TestRepo.delete_all(UserRecommendation)
      start_supervised!({Oban, repo: TestRepo, testing: :manual})
      :ok
    end

    test "the migrations create Oban's tables, and roll them back" do
      migrations = Ecto.Migrator.migrations_path(TestRepo)

      assert {:ok, %Oban.Job{id: id}} = Oban.insert(BatchRecommend.new(%{"user_ids" => []}))
      assert %{num_rows: 1} = TestRepo.query!("SELECT 1 FROM oban_jobs WHERE id = $1", [id])

      Ecto.Migrator.run(TestRepo, migrations, :down, to: 20_260_101_000_002, log: false)
      assert %{rows: [[nil]]} = TestRepo.query!("SELECT to_regclass('oban_jobs')")

      Ecto.Migrator.run(TestRepo, migrations, :up, all: true, log: false)
      assert {:ok, %Oban.Job{}} = Oban.insert(BatchRecommend.new(%{"user_ids" => []}))
    end

    test "BatchRecommend upserts one row per user with an expiry" do
      users = [Ecto.UUID.generate(), Ecto.UUID.generate()]

      assert :ok = perform_job(BatchRecommend, %{"user_ids" => users})
      assert :ok = perform_job(BatchRecommend, %{"user_ids" => users, "n" => 3})

      rows = TestRepo.all(from r in UserRecommendation, order_by: r.user_id)
      assert Enum.map(rows, & &1.user_id) == Enum.sort(users)

      for row <- rows do
        assert %{source: "popular", model: "demo", version: 1} = row
        assert length(row.item_ids) == 3 and length(row.scores) == 3
        assert DateTime.compare(row.expires_at, DateTime.utc_now()) == :gt
      end
    end

    test "a sweep refreshes one page and enqueues the next", %{dir: dir} = ctx do
      now = DateTime.utc_now()

      users =
        for _ <- 1..3 do
          user = Ecto.UUID.generate()

          TestRepo.insert!(%UserInteraction{
            user_id: user,
            post_id: Ecto.UUID.generate(),
            interaction_type: :like,
            created_at: now
          })

          user
        end

      # Registered under a name of its own: the job names it, and so does the next page.
      UroReco.Jobs.register(
        UroReco.Test.Channels,
        Keyword.delete(jobs(ctx, dir, n: 2, page_size: 2), :channel_pool)
      )

      on_exit(fn -> UroReco.Jobs.unregister(UroReco.Test.Channels) end)
      args = %{"after" => nil, "instance" => "UroReco.Test.Channels"}

      assert :ok = perform_job(BatchRecommend, args)

      [_first, second, _third] = Enum.sort(users)
      assert TestRepo.aggregate(UserRecommendation, :count) == 2
      assert_enqueued worker: BatchRecommend, args: %{args | "after" => second}
    end

    test "a job whose instance nobody registered fails naming it, and writes nothing",
         %{dir: dir} = ctx do
      args = %{"user_ids" => [Ecto.UUID.generate()], "instance" => "Uro.Elsewhere"}
      assert {:error, message} = perform_job(BatchRecommend, args)
      assert message =~ ~s("Uro.Elsewhere")
      assert TestRepo.aggregate(UserRecommendation, :count) == 0

      UroReco.Jobs.register(UroReco, Keyword.delete(jobs(ctx, dir), :training))
      assert {:error, message} = perform_job(Retrain, %{})
      assert message =~ "[:training]"
    end

    test "with explain, each item's reasons are stored as Recommend gives them",
         %{pool: pool, csv: csv, sidecar_opts: sidecar_opts, dir: dir} do
      # The demo's user ids are not UUIDs (the table's user_id is): version 2 is
      # the same data with each user renamed to a UUID, so the job's users are
      # known to the model and get reasons.
      renamed = Path.join(dir, "uuid_users.csv")
      [header | lines] = csv |> File.read!() |> String.split("\n", trim: true)

      File.write!(renamed, [
        header,
        "\n",
        Enum.map(lines, fn line ->
          [user | rest] = String.split(line, ",")
          [Enum.join([uuid(user) | rest], ","), "\n"]
        end)
      ])

      UroReco.Test.SidecarHelpers.cli!(
        ~w(train --interactions #{renamed} --model-root #{sidecar_opts[:model_root]} --name demo)
      )

      assert {:ok, %{new_version: 2}} = Client.reload(pool, 2, timeout: 60_000)
      users = lines |> Enum.map(&hd(String.split(&1, ","))) |> Enum.uniq() |> Enum.take(20)
      users = Enum.map(users, &uuid/1)

      assert :ok = perform_job(BatchRecommend, %{"user_ids" => users, "n" => 4, "explain" => 2})

      rows = TestRepo.all(from r in UserRecommendation, order_by: r.user_id)
      assert length(rows) == 20

      for row <- rows do
        {:ok, rec} = Client.recommend(pool, row.user_id, n: 4, explain: 2)
        assert {row.source, row.version} == {"model", 2}
        assert row.item_ids == Enum.map(rec.items, & &1.item_id)

        assert row.reasons ==
                 Enum.map(rec.items, fn item ->
                   Enum.map(item.reasons, &Map.new(&1, fn {k, v} -> {Atom.to_string(k), v} end))
                 end)

        assert Enum.all?(row.reasons, &(length(&1) in 1..2))
      end

      # Refreshed without explain: the reasons of the old items go with them.
      assert :ok = perform_job(BatchRecommend, %{"user_ids" => users, "n" => 4})

      assert TestRepo.all(from r in UserRecommendation, select: r.reasons) ==
               List.duplicate(nil, 20)
    end

    test "Retrain exports user_interactions for training", %{pool: pool} do
      now = DateTime.utc_now()

      posts = Enum.map(1..10, fn _ -> Ecto.UUID.generate() end)

      for user <- Enum.map(1..30, fn _ -> Ecto.UUID.generate() end),
          {post, i} <- Enum.with_index(posts),
          rem(:erlang.phash2(user) + i, 3) == 0 do
        TestRepo.insert!(%UserInteraction{
          user_id: user,
          post_id: post,
          interaction_type: Enum.at([:view, :click, :like, :share], rem(i, 4)),
          created_at: now
        })
      end

      assert :ok = perform_job(Retrain, %{})
      assert {:ok, %{version: 2}} = Client.status(pool)
    end
  end
end
