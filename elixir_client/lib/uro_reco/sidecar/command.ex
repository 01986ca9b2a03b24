defmodule UroReco.Sidecar.Command do
  @moduledoc """
  Builds the OS command that starts one sidecar.

  The sidecar always binds port 0 (the OS picks free ports, reported on the ready
  line), watches its stdin (closing the BEAM port stops it) and the BEAM's OS pid
  (a killed BEAM stops it too).
  """

  @typedoc "Options, see `UroReco.Sidecar.start_link/1`."
  @type opts :: keyword()

  @doc """
  Returns `{executable, args}` for `Port.open({:spawn_executable, executable}, args: args)`.

  Raises `ArgumentError` when a required option is missing or the interpreter
  cannot be found.
  """
  @spec build(opts()) :: {String.t(), [String.t()]}
  def build(opts) do
    python = Keyword.get(opts, :python, "python3")

    serve =
      [
        executable!(python),
        "-m",
        "reco_sidecar",
        "serve",
        "--model-root",
        fetch!(opts, :model_root),
        "--model",
        fetch!(opts, :model),
        "--port",
        "0",
        "--workers",
        Integer.to_string(Keyword.get(opts, :workers, 1)),
        "--exit-on-stdin-eof",
        "--parent-pid",
        System.pid()
      ] ++
        seconds_flag("--idle-shutdown-after", opts[:idle_shutdown_after]) ++
        seconds_flag("--grace", opts[:grace]) ++ Keyword.get(opts, :extra_args, [])

    case Keyword.get(opts, :stderr, :inherit) do
      :inherit ->
        {hd(serve), tl(serve)}

      {:file, path} ->
        # `exec` keeps the sidecar's OS pid equal to the port's.
        {"/bin/sh",
         ["-c", ~s(log="$1"; shift; exec "$@" 2>>"$log"), "sh", to_string(path) | serve]}
    end
  end

  defp fetch!(opts, key) do
    case Keyword.fetch(opts, key) do
      {:ok, value} when is_binary(value) and value != "" -> value
      _ -> raise ArgumentError, "#{inspect(key)} is required and must be a non-empty string"
    end
  end

  defp executable!(name) do
    System.find_executable(name) ||
      raise ArgumentError, "cannot find the Python interpreter #{inspect(name)}"
  end

  # Durations are milliseconds on the Elixir side and seconds on the command line.
  defp seconds_flag(_flag, nil), do: []

  defp seconds_flag(flag, ms) when is_integer(ms) and ms > 0 do
    seconds =
      if rem(ms, 1000) == 0, do: Integer.to_string(div(ms, 1000)), else: to_string(ms / 1000)

    [flag, seconds]
  end
end
