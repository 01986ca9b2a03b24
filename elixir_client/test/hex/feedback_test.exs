defmodule UroReco.FeedbackTest do
  # Needs the hex dependencies and a sidecar with the Feedback RPC (online
  # learning, `serve --online-dir`).
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.{Client, Error, Feedback}
  alias UroReco.Feedback.Result

  @moduletag :hex
  @moduletag timeout: 180_000

  setup do
    dir = tmp_dir!("uro_reco_feedback")
    on_exit(fn -> File.rm_rf!(dir) end)
    ctx = UroReco.Test.ServedModel.start!(dir, ["--online-dir", Path.join(dir, "online")])
    {:ok, rec} = Client.recommend(ctx.pool, ctx.user_id, n: 1)
    Map.put(ctx, :item_id, hd(rec.items).item_id)
  end

  test "an event is recorded once; its retry is a duplicate; the user is then answered online",
       ctx do
    event = %{
      user_id: ctx.user_id,
      item_id: ctx.item_id,
      type: "click",
      event_id: "e-#{System.unique_integer()}"
    }

    assert {:ok, %Result{accepted: 1, duplicates: 0}} = UroReco.feedback(ctx.pool, event)
    assert {:ok, %Result{accepted: 0, duplicates: 1}} = UroReco.feedback(ctx.pool, event)

    assert {:ok, rec} = Client.recommend(ctx.pool, ctx.user_id, n: 5)
    assert rec.source == :online
    refute ctx.item_id in Enum.map(rec.items, & &1.item_id)
  end

  test "a batch goes in calls of at most 1,000 events, each one counted", ctx do
    test = self()
    handler = make_ref()

    :telemetry.attach(
      handler,
      [:uro_reco, :feedback, :sent],
      fn _, m, _, _ -> send(test, {:sent, m}) end,
      nil
    )

    on_exit(fn -> :telemetry.detach(handler) end)

    events =
      for i <- 1..2_500,
          do: [
            user_id: "online-user-#{rem(i, 50)}",
            item_id: ctx.item_id,
            type: :view,
            event_id: "b-#{i}"
          ]

    assert {:ok, %Result{accepted: 2_500, duplicates: 0}} =
             UroReco.feedback_batch(ctx.pool, events)

    sizes =
      for _ <- 1..3 do
        assert_received {:sent, %{events: n, accepted: n}}
        n
      end

    assert Enum.sort(sizes) == [500, 1_000, 1_000]
    refute_received {:sent, _}
  end

  test "a malformed event raises naming its field before anything is sent; the sidecar's refusals name theirs",
       ctx do
    good = %{user_id: "u", item_id: ctx.item_id, type: "click"}

    error =
      assert_raise ArgumentError, fn ->
        UroReco.feedback_batch(ctx.pool, [good, %{good | type: ""}])
      end

    assert error.message =~ "events[1].type"

    assert {:error, %Error{code: :invalid_argument, message: message}} =
             UroReco.feedback(ctx.pool, %{good | type: "no-such-type"})

    assert message =~ "events[0].type"
  end

  test "feedback_async delivers every event it accepted, in batches", ctx do
    start_supervised!({Feedback.Buffer, pool: ctx.pool, batch_size: 100, flush_after: 50})

    results =
      for i <- 1..250,
          do:
            UroReco.feedback_async(ctx.pool, %{
              user_id: "async-#{rem(i, 7)}",
              item_id: ctx.item_id,
              type: "like"
            })

    assert Enum.all?(results, &(&1 == :ok))

    eventually(
      fn -> Feedback.Buffer.stats(ctx.pool) == %{pending: 0, dropped: 0, sent: 250} end,
      "all 250 events are sent",
      30_000
    )
  end
end
