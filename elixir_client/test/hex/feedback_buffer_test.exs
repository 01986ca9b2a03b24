defmodule UroReco.FeedbackBufferTest do
  # Needs the hex dependencies. No sidecar answers here: the buffer can send
  # nothing, so it fills, and must drop and count rather than block or grow.
  use ExUnit.Case, async: false

  import UroReco.Test.SidecarHelpers

  alias UroReco.Feedback.Buffer

  @moduletag :hex

  @name UroReco.Test.NowhereReco

  setup do
    {:ok, socket} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(socket)
    :gen_tcp.close(socket)

    start_supervised!(
      {UroReco,
       name: @name,
       addresses: ["127.0.0.1:#{port}"],
       feedback_buffer: [max_pending: 100, batch_size: 10, flush_after: 20]}
    )

    :ok
  end

  test "past max_pending an event is dropped and counted, never queued or waited for" do
    test = self()
    handler = make_ref()

    :telemetry.attach(
      handler,
      [:uro_reco, :feedback, :dropped],
      fn _, %{count: 1}, meta, _ ->
        send(test, {:dropped, meta})
      end,
      nil
    )

    on_exit(fn -> :telemetry.detach(handler) end)

    event = %{user_id: "u", item_id: "i", type: "click"}
    results = for _ <- 1..150, do: UroReco.feedback_async(@name, event)

    assert Enum.count(results, &(&1 == :ok)) == 100
    assert Enum.count(results, &(&1 == :dropped)) == 50
    assert %{pending: 100, dropped: 50, sent: 0} = Buffer.stats(@name)

    for _ <- 1..50, do: assert_received({:dropped, %{pool: @name, reason: :full}})
    refute_received {:dropped, _}

    # The buffer's mailbox stays bounded while it keeps failing to send.
    pid = Process.whereis(Buffer.name(@name))

    eventually(
      fn -> Process.info(pid, :message_queue_len) == {:message_queue_len, 0} end,
      "the buffer has taken every accepted event",
      5_000
    )
  end

  test "a malformed event raises naming the field, in the caller" do
    error =
      assert_raise ArgumentError, fn ->
        UroReco.feedback_async(@name, %{user_id: "u", item_id: "", type: "click"})
      end

    assert error.message =~ "item_id"
    assert %{pending: 0, dropped: 0} = Buffer.stats(@name)
  end
end
