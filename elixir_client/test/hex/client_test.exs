defmodule UroReco.ClientTest do
  # Needs the hex dependencies: `mix deps.get && mix test`.
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.{ChannelPool, Client, Error, Sidecar}
  alias UroReco.Sidecar.OSProcess

  @moduletag :hex
  @moduletag timeout: 180_000

  setup do
    dir = tmp_dir!("uro_reco_client")
    on_exit(fn -> File.rm_rf!(dir) end)
    UroReco.Test.ServedModel.start!(dir)
  end

  test "recommends for a known user, with JSON-LD decoded", %{pool: pool, user_id: user} do
    assert {:ok, rec} = Client.recommend(pool, user, n: 5)

    assert %{user_id: ^user, model: "demo", version: 1, source: :model} = rec
    assert Enum.map(rec.items, & &1.rank) == [1, 2, 3, 4, 5]
    assert Enum.all?(rec.items, &(is_binary(&1.item_id) and is_float(&1.score)))
    assert %{"@type" => "ItemList"} = rec.jsonld
  end

  test "maps gRPC statuses to error codes", %{pool: pool} do
    assert {:ok, %{source: :popular}} = Client.recommend(pool, "nobody", n: 3)

    assert {:error, %Error{code: :not_found, status: 5}} =
             Client.recommend(pool, "nobody", disable_fallback: true)

    assert {:error, %Error{code: :invalid_argument}} = Client.recommend(pool, "nobody", n: 0)
  end

  test "rejects unknown options before calling", %{pool: pool, user_id: user} do
    assert_raise ArgumentError, fn -> Client.recommend(pool, user, count: 5) end
  end

  test "similar items come from the ANN index", %{pool: pool} do
    {:ok, rec} = Client.recommend(pool, "nobody", n: 1)
    item = hd(rec.items).item_id

    assert {:ok, %{item_id: ^item, source: :ann, items: [_ | _]}} =
             Client.similar(pool, item, n: 5)
  end

  test "batch_recommend holds at most one call's answers: the next call opens when they are read",
       %{pool: pool} do
    attach_telemetry()
    users = for i <- 1..450, do: "user-#{i}"
    stream = Client.batch_recommend(pool, users, n: 2, max_users_per_call: 100)

    # The first 100 answers come from one call; the second opens on the 101st.
    assert length(Enum.take(stream, 100)) == 100
    assert batch_calls() == 1
    assert length(Enum.take(stream, 101)) == 101
    assert batch_calls() == 2

    answers = Enum.to_list(stream)
    assert batch_calls() == 5
    assert Enum.map(answers, fn {:ok, rec} -> rec.index end) == Enum.to_list(0..449)
    assert Enum.map(answers, fn {:ok, rec} -> rec.user_id end) == users

    assert_raise ArgumentError, ~r/max_users_per_call/, fn ->
      Client.batch_recommend(pool, users, max_users_per_call: 0)
    end
  end

  test "a failed call ends batch_recommend there: no later call is opened", %{pool: pool} do
    attach_telemetry()
    users = for i <- 1..30, do: "user-#{i}"

    # n: 0 is refused by the sidecar (INVALID_ARGUMENT) on the first call.
    assert [{:error, %Error{code: :invalid_argument}}] =
             pool |> Client.batch_recommend(users, n: 0, max_users_per_call: 10) |> Enum.to_list()

    assert batch_calls() == 1
  end

  test "batch_recommend is lazy and reports users it cannot answer", %{pool: pool, user_id: user} do
    attach_telemetry()
    stream = Client.batch_recommend(pool, [user, "nobody"], n: 3, disable_fallback: true)
    refute_received {:telemetry, [:uro_reco, :call, :start], _}

    assert [{:ok, %{user_id: ^user, index: 0, items: [_, _, _]}}, {:error, {"nobody", error}}] =
             Enum.to_list(stream)

    assert %Error{code: :not_found} = error
    assert_received {:telemetry, [:uro_reco, :call, :start], %{rpc: :batch_recommend}}
  end

  test "status lists every worker and calls reach all of them", %{pool: pool, ready: ready} do
    assert {:ok, status} = Client.status(pool)
    assert %{model: "demo", version: 1, state: :available} = status
    assert Enum.sort(Enum.map(status.workers, & &1.address)) == Enum.sort(ready.worker_addresses)
    assert ChannelPool.addresses(pool) == ready.worker_addresses

    answered_by =
      for _ <- 1..20, into: MapSet.new() do
        {:ok, %{worker: worker}} = Client.status(pool)
        worker.address
      end

    assert MapSet.size(answered_by) == 2
  end

  test "reload swaps to a newly trained version", %{pool: pool, csv: csv, sidecar_opts: opts} do
    {:ok, 2} =
      UroReco.Training.train(csv, Keyword.take(opts, [:model_root, :model, :python, :env]))

    assert {:ok, %{old_version: 1, new_version: 2, workers: 2}} = Client.reload(pool, "latest")
    assert {:ok, %{version: 2}} = Client.status(pool)
  end

  test "emits telemetry with the request id and outcome", %{pool: pool} do
    attach_telemetry()
    Client.recommend(pool, "nobody", disable_fallback: true, request_id: "req-42")

    assert_received {:telemetry, [:uro_reco, :call, :start],
                     %{request_id: "req-42", rpc: :recommend}}

    assert_received {:telemetry, [:uro_reco, :call, :stop],
                     %{request_id: "req-42", result: :error, code: :not_found}}
  end

  test "a call whose deadline has passed is not sent", %{pool: pool, user_id: user} do
    past = DateTime.add(DateTime.utc_now(), -1, :second)

    assert {:error, %Error{code: :deadline_exceeded}} =
             Client.recommend(pool, user, deadline: past)
  end

  test "retries through a sidecar restart within the deadline", ctx do
    %{pool: pool, sidecar: sidecar, ready: ready, user_id: user} = ctx
    OSProcess.signal(ready.os_pid, "KILL")

    # Answered by the old workers while they drain, or by the new sidecar.
    assert {:ok, %{user_id: ^user}} = Client.recommend(pool, user, timeout: 60_000)

    eventually(
      fn -> match?({:ok, %{os_pid: pid}} when pid != ready.os_pid, Sidecar.ready(sidecar)) end,
      "the sidecar is started again",
      60_000
    )

    {:ok, new_ready} = Sidecar.ready(sidecar)
    track(new_ready)

    eventually(
      fn -> ChannelPool.addresses(pool) == new_ready.worker_addresses end,
      "the pool follows the new workers"
    )

    assert {:ok, %{user_id: ^user}} = Client.recommend(pool, user, timeout: 60_000)
  end

  defp attach_telemetry do
    test = self()
    id = make_ref()

    :telemetry.attach_many(
      id,
      [[:uro_reco, :call, :start], [:uro_reco, :call, :stop]],
      fn event, _measurements, meta, _ -> send(test, {:telemetry, event, meta}) end,
      nil
    )

    on_exit(fn -> :telemetry.detach(id) end)
  end

  defp batch_calls(count \\ 0) do
    receive do
      {:telemetry, [:uro_reco, :call, :start], %{rpc: :batch_recommend}} -> batch_calls(count + 1)
    after
      0 -> count
    end
  end
end
