defmodule UroReco.Repo.Migrations.AddObanJobs do
  # Oban 2.23 does not start without its own tables (oban_jobs, oban_peers and
  # their functions and indexes). Version 14 is the current one in Oban 2.23;
  # a later Oban adds a migration that moves up from here.
  use Ecto.Migration

  def up, do: Oban.Migration.up(version: 14)

  def down, do: Oban.Migration.down(version: 1)
end
