defmodule UroReco.JobsTest do
  # The jobs' settings come from the host as options, registered per instance;
  # a job finds them through the instance its args name.
  use ExUnit.Case, async: false

  alias UroReco.Jobs

  @moduletag :otp

  setup do
    on_exit(fn ->
      Jobs.unregister(UroReco)
      Jobs.unregister(Uro.Reco)
    end)
  end

  test "a job without \"instance\" uses the instance named UroReco" do
    :ok = Jobs.register(UroReco, repo: My.Repo, channel_pool: My.Channels, batch: [n: 7])
    :ok = Jobs.register(Uro.Reco, repo: Other.Repo)

    assert Jobs.default_instance() == "UroReco"
    assert {:ok, jobs} = Jobs.fetch(%{"after" => nil})
    assert {jobs[:repo], jobs[:channel_pool], jobs[:batch][:n]} == {My.Repo, My.Channels, 7}
    assert jobs[:batch][:page_size] == 500 and jobs[:oban] == Oban
  end

  test "a job naming its instance gets that instance's settings; its pool is the instance" do
    :ok = Jobs.register(UroReco, repo: My.Repo)
    :ok = Jobs.register(Uro.Reco, repo: Other.Repo)

    assert {:ok, jobs} = Jobs.fetch(%{"instance" => "Uro.Reco", "user_ids" => []})
    assert {jobs[:repo], jobs[:channel_pool]} == {Other.Repo, Uro.Reco}
  end

  test "an instance nobody registered is an error naming it and the arg" do
    assert {:error, message} = Jobs.fetch(%{"instance" => "Nope.Reco"})
    assert message =~ ~s("Nope.Reco") and message =~ ~s(job arg "instance")

    assert {:error, message} = Jobs.fetch(%{"instance" => 42})
    assert message =~ "42"

    :ok = Jobs.register(Uro.Reco, repo: My.Repo)
    :ok = Jobs.unregister(Uro.Reco)
    assert {:error, _} = Jobs.fetch(%{"instance" => "Uro.Reco"})
  end

  test "a job that needs :training fails naming it when the instance has none" do
    :ok = Jobs.register(UroReco, repo: My.Repo)
    assert {:error, message} = Jobs.fetch(%{}, [:training])
    assert message =~ "[:training]"

    :ok = Jobs.register(UroReco, repo: My.Repo, training: [model_root: "/m", model: "posts"])
    assert {:ok, jobs} = Jobs.fetch(%{}, [:training])

    assert jobs[:training][:python] == "python3" and
             jobs[:training][:workdir] == System.tmp_dir!()
  end

  test "bad settings are refused before anything is registered, naming the option" do
    error =
      assert_raise ArgumentError, fn ->
        Jobs.register(UroReco, repo: My.Repo, batch: [users_per_message: 0])
      end

    assert error.message =~ ":users_per_message for batch"
    assert {:error, _} = Jobs.fetch(%{})
  end
end
