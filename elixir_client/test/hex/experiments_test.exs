defmodule UroReco.ExperimentsTest do
  # Needs the hex dependencies; the :db test also PostgreSQL or CockroachDB at
  # DATABASE_URL: `mix test --include db`.
  use ExUnit.Case, async: false
  use Oban.Testing, repo: UroReco.TestRepo

  import UroReco.Test.SidecarHelpers

  alias UroReco.Schemas.UserRecommendation
  alias UroReco.Test.ServedModel
  alias UroReco.{Client, Error, TestRepo}
  alias UroReco.Workers.BatchRecommend

  @moduletag :hex
  @moduletag timeout: 180_000

  # Every user is in the experiment; half see the model, half a random draw.
  @experiments """
  [[experiments]]
  name = "feed"
  salt = "uro-reco-test"
  share = 1.0
  arms = [
    { name = "control", model = "demo", weight = 1 },
    { name = "random", baseline = "random", weight = 1 },
  ]
  """

  setup do
    dir = tmp_dir!("uro_reco_experiments")
    on_exit(fn -> File.rm_rf!(dir) end)
    file = Path.join(dir, "experiments.toml")
    File.write!(file, @experiments)
    ctx = ServedModel.start!(dir, ["--experiments", file])

    users =
      ctx.csv |> File.stream!() |> Stream.drop(1) |> Stream.map(&hd(String.split(&1, ",")))

    Map.merge(ctx, %{experiments_file: file, users: users |> Enum.uniq() |> Enum.take(40)})
  end

  test "recommendations name the arm that answered, and the source of a random arm",
       %{pool: pool, users: users} do
    by_arm =
      Enum.group_by(users, fn user ->
        {:ok, rec} = Client.recommend(pool, user, n: 5)
        assert rec.experiment == "feed"
        assert %{"experiment" => "feed", "arm" => arm} = rec.jsonld
        assert arm == rec.arm
        {rec.arm, rec.source}
      end)

    assert Map.keys(by_arm) |> Enum.sort() == [{"control", :model}, {"random", :random}]
  end

  test "experiment: and arm: override the user's arm", %{pool: pool, users: users} do
    user = Enum.find(users, &match?({:ok, %{arm: "control"}}, Client.recommend(pool, &1, [])))
    user = user || flunk("no user in the control arm")

    assert {:ok, %{arm: "random", experiment: "feed", source: :random}} =
             Client.recommend(pool, user, experiment: "feed", arm: "random")

    assert {:error, %Error{code: :invalid_argument, message: message}} =
             Client.recommend(pool, user, experiment: "feed", arm: "nope")

    assert message =~ "arm"

    assert {:error, %Error{code: :invalid_argument}} =
             Client.recommend(pool, user, experiment: "other")
  end

  test "batch_recommend gives each user Recommend's arm and items in both message forms",
       %{pool: pool, users: users} do
    expected =
      for user <- users do
        {:ok, rec} = Client.recommend(pool, user, n: 4)
        {user, rec.experiment, rec.arm, rec.source, rec.items}
      end

    for per_message <- [1, 7, 100] do
      results =
        pool
        |> Client.batch_recommend(users ++ ["nobody"],
          n: 4,
          disable_fallback: true,
          users_per_message: per_message
        )
        |> Enum.to_list()

      {answers, [last]} = Enum.split(results, -1)

      assert Enum.map(answers, fn {:ok, rec} ->
               {rec.user_id, rec.experiment, rec.arm, rec.source, rec.items}
             end) == expected

      assert Enum.map(answers, fn {:ok, rec} -> rec.index end) ==
               Enum.to_list(0..(length(users) - 1))

      assert Enum.all?(answers, fn {:ok, rec} -> rec.model == "demo" and rec.version == 1 end)
      assert {:error, {"nobody", %Error{code: :not_found}}} = last
    end
  end

  test "a user answered by a pinned version's arm gets that version in a chunked batch",
       %{pool: pool, users: users, csv: csv, sidecar_opts: opts, experiments_file: file} do
    {:ok, 2} =
      UroReco.Training.train(csv, Keyword.take(opts, [:model_root, :model, :python, :env]))

    assert {:ok, %{new_version: 2}} = Client.reload(pool, "latest")

    File.write!(file, """
    [[experiments]]
    name = "pin"
    salt = "uro-reco-test"
    share = 1.0
    arms = [
      { name = "current", model = "demo", weight = 1 },
      { name = "v1", model = "demo", version = 1, weight = 1 },
    ]
    """)

    assert {:ok, %{workers: 2}} = Client.reload_experiments(pool)

    expected =
      for user <- users do
        {:ok, rec} = Client.recommend(pool, user, n: 4)
        {user, rec.arm, rec.version, rec.items}
      end

    answers =
      for {:ok, rec} <- Client.batch_recommend(pool, users, n: 4, users_per_message: 16),
          do: {rec.user_id, rec.arm, rec.version, rec.items}

    assert answers == expected

    versions =
      for {_user, arm, version, _items} <- answers, into: MapSet.new(), do: {arm, version}

    assert versions == MapSet.new([{"current", 2}, {"v1", 1}])
  end

  test "list_experiments and reload_experiments; a bad file keeps the old one",
       %{pool: pool, experiments_file: file, users: users} do
    for user <- users, do: {:ok, _} = Client.recommend(pool, user)

    assert {:ok, %{experiments: [feed], generation: generation}} = Client.list_experiments(pool)
    assert %{name: "feed", share: 1.0, arms: [control, random]} = feed
    assert %{name: "control", model: "demo", traffic_share: 0.5, shadow: false} = control
    assert %{name: "random", baseline: "random", traffic_share: 0.5} = random
    assert control.requests + random.requests == length(users)

    File.write!(file, String.replace(@experiments, "weight = 1 }", "weight = -1 }"))

    assert {:error, %Error{code: :failed_precondition, message: message}} =
             Client.reload_experiments(pool)

    assert message =~ "weight"
    assert {:ok, %{experiments: [^feed], generation: ^generation}} = Client.list_experiments(pool)

    File.write!(file, String.replace(@experiments, "share = 1.0", "share = 0.5"))
    assert {:ok, %{workers: 2, experiments: 1, generation: new}} = Client.reload_experiments(pool)
    assert new > generation
    assert {:ok, %{experiments: [%{share: 0.5}]}} = Client.list_experiments(pool)
  end

  test "status lists the models, the default one and no store", %{pool: pool} do
    assert {:ok, status} = Client.status(pool)
    assert %{default_model: "demo", store: nil} = status
    assert [%{model: "demo", version: 1, state: :available, versions: [_ | _]}] = status.models
  end

  test "the call's stop event carries the experiment and arm", %{pool: pool, users: [user | _]} do
    test = self()
    id = make_ref()

    :telemetry.attach(
      id,
      [:uro_reco, :call, :stop],
      fn _event, _measurements, meta, _ -> send(test, {:stop, meta}) end,
      nil
    )

    on_exit(fn -> :telemetry.detach(id) end)
    {:ok, %{arm: arm}} = Client.recommend(pool, user, request_id: "arm-1")

    assert_received {:stop, %{request_id: "arm-1", experiment: "feed", arm: ^arm}}
    assert arm in ["control", "random"]
  end

  describe "with a database" do
    @describetag :db

    setup do
      start_supervised!(TestRepo)

      Ecto.Migrator.run(TestRepo, Ecto.Migrator.migrations_path(TestRepo), :up,
        all: true,
        log: false
      )

      TestRepo.delete_all(UserRecommendation)
      start_supervised!({Oban, repo: TestRepo, testing: :manual})
      :ok
    end

    test "the BatchRecommend job stores each user's arm and reports it per arm",
         %{pool: pool} do
      users = for _ <- 1..30, do: Ecto.UUID.generate()
      test = self()
      id = make_ref()

      :telemetry.attach(
        id,
        [:uro_reco, :batch, :stored],
        fn _event, measurements, meta, _ -> send(test, {:stored, measurements, meta}) end,
        nil
      )

      on_exit(fn -> :telemetry.detach(id) end)

      UroReco.Jobs.register(UroReco,
        repo: TestRepo,
        channel_pool: pool,
        batch: [n: 3, users_per_message: 8, timeout: 30_000]
      )

      on_exit(fn -> UroReco.Jobs.unregister(UroReco) end)

      assert :ok = perform_job(BatchRecommend, %{"user_ids" => users})

      rows = TestRepo.all(UserRecommendation)
      assert Enum.sort(Enum.map(rows, & &1.user_id)) == Enum.sort(users)

      for row <- rows do
        {:ok, rec} = Client.recommend(pool, row.user_id, n: 3)
        assert {row.experiment, row.arm, row.source} == {"feed", rec.arm, to_string(rec.source)}
        assert row.item_ids == Enum.map(rec.items, & &1.item_id)
      end

      counts = Enum.frequencies_by(rows, & &1.arm)
      assert map_size(counts) == 2

      for {arm, users} <- counts do
        assert_received {:stored, %{users: ^users},
                         %{experiment: "feed", arm: ^arm, model: "demo", version: 1}}
      end
    end
  end
end
