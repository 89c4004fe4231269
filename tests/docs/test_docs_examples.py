"""Every code block of README.md and docs/*.md works: the docs cannot drift from the code.

Fast: every fence names its language; every Python block compiles; every shell command is
complete (no ``...``) and parses with the real argument parser (``idresnet``, and the
``idresnet.cli.main`` of a ``torchrun``), names a script that exists, or installs an
extra that pyproject.toml defines; the generated key tables of docs/training.md are current.

Run: every block, in a new working folder, with the stand-ins of docfixtures.py
(:data:`~docfixtures.PLACEHOLDERS`, :data:`~docfixtures.FILES`) and ``idresnet`` commands
shrunk by appended flags (:data:`~docfixtures.SHRINK`); each command must exit 0. A command
that cannot run here is listed in :data:`NOT_RUN` with its reason (shown as a skipped
test); a new block is run unless someone adds it there. The runs are slow-marked, except
the cheap blocks of :data:`FAST_RUNS`.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest
import torch
from docblocks import NOT_CODE, PYTHON, ROOT, SHELL, blocks, commands
from docfixtures import (
    FILES,
    PLACEHOLDERS,
    PYTHON_SHRINK,
    SHRINK,
    TRAIN_VALUES,
    Fixtures,
    files_named,
    make_files,
    substitute,
)

from idresnet.cli.main import build_parser, main

BLOCKS = blocks()
SHELL_BLOCKS = [b for b in BLOCKS if b.lang in SHELL]
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang in PYTHON]
COMMANDS = [c for b in SHELL_BLOCKS for c in commands(b)]

# (file, the start of a command) -> why the command is parsed but not run here
NOT_RUN = {
    ("README.md", "pip install"): "installs packages: the tests run in the installed project",
    ("README.md", "python -m pytest"): "the test suite itself",
    ("README.md", "torchrun"): "several processes: DDP is run by tests/training/test_ddp.py (slow)",
    ("docs/training.md", "torchrun"): "several processes or nodes: DDP is run by tests/training/test_ddp.py, "
    "test_imagenet_ddp.py and test_torchrun_resume.py (slow)",
    ("docs/training.md", "srun"): "a SLURM job step (its idresnet command is parsed): several nodes; "
    "restarts and requeues are run by tests/training/test_torchrun_resume.py (slow)",
    ("docs/training.md", "sbatch"): "submits a SLURM job",
    ("docs/performance.md", "idresnet bench --device cpu --models 110,164"): "a benchmark of minutes "
    "(compiled and profiled modes); `idresnet bench` itself is tested by tests/perf/test_bench.py",
    ("docs/performance.md", "idresnet bench --device cpu --models 1001"): "a benchmark of minutes "
    "(ResNet-1001, per-unit compilation); tests/perf/test_bench.py tests the command",
    ("docs/performance.md", "python benchmarks/checkpoint_memory.py"): "a benchmark of minutes "
    "(ResNet-1001 at batch 128: 18 GiB without checkpointing); tests/networks/test_checkpointing.py",
    ("docs/performance.md", "mkdir -p datasets"): "copies the real dataset for the GPU machine",
    ("docs/performance.md", "cp ../shared/datasets"): "copies the real dataset for the GPU machine",
    ("docs/data.md", "python benchmarks/bench_loader.py"): "a benchmark on the real dataset's 60,000 images",
    ("docs/performance.md", "python benchmarks/plain_vs_train.py"): "a benchmark of minutes on the real dataset; "
    "its driver is run on a tiny JPEG fixture by tests/benchmarks/test_plain_loop.py",
    ("docs/performance.md", "python benchmarks/conv_ceiling.py"): "a benchmark of a minute (ResNet-110's "
    "convolutions at batch 128); tests/benchmarks/test_conv_ceiling.py runs it on a tiny batch",
    ("docs/performance.md", "python benchmarks/malloc_keep.py"): "training processes of minutes each; its "
    "driver is run on a tiny network by tests/benchmarks/test_malloc_keep.py (slow)",
    ("docs/performance.md", "bash benchmarks/gpu_check.sh"): "the GPU check's CPU path is run by "
    "tests/benchmarks/test_gpu_check.py",
    ("docs/training.md", "pip install"): "installs packages: the tests run in the installed project",
    ("docs/training.md", "WANDB_MODE=offline idresnet train"): "the trackers' optional extras and environment: "
    "tests/training/test_loggers.py runs wandb offline, mlflow on a local store, and TensorBoard",
    ("docs/training.md", "MLFLOW_TRACKING_URI=http"): "an mlflow server; tests/training/test_loggers.py runs "
    "mlflow on a local store and a server that does not answer",
}

# (file, the start of a Python block) -> why the block is compiled but not run here
NOT_RUN_PYTHON = {
    ("docs/pretrained.md", "from huggingface_hub import"): "uploads to the Hugging Face Hub: needs its "
    "network, an account and huggingface_hub; the folder it uploads is tested by tests/weights/test_hubfolder.py",
}

# (file, the start of a block) of the blocks cheap enough (seconds) to run in the fast suite
FAST_RUNS = {
    ("docs/training.md", "import dataclasses\n\nfrom idresnet.training import"),
    ("docs/models.md", "import idresnet\nidresnet.create_model("),
    ("docs/pretrained.md", 'import idresnet\n\nmodel = idresnet.create_model("preact_resnet164"'),
}


def _starts(block, path: str, start: str) -> bool:
    return block.path == path and block.text.startswith(start)


def is_fast(block) -> bool:
    return any(_starts(block, path, start) for path, start in FAST_RUNS)


def not_run_reason(cmd) -> str | None:
    for (path, start), reason in NOT_RUN.items():
        if cmd.block.path == path and cmd.text.startswith(start):
            return reason
    return None


def ids(items):
    return [item.id for item in items]


# ---------------------------------------------------------------- fast: parse everything


def test_every_fence_names_its_language():
    unnamed = [b.id for b in BLOCKS if b.lang not in (*SHELL, *PYTHON, *NOT_CODE)]
    assert not unnamed, f"fences without a known language (bash, python, text, ...): {unnamed}"
    assert len(PYTHON_BLOCKS) >= 6 and len(COMMANDS) >= 40  # the docs' examples were found


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=ids(PYTHON_BLOCKS))
def test_python_block_compiles(block):
    compile(block.text, block.id, "exec")


def _idresnet_argv(cmd) -> list[str] | None:
    """The arguments of ``idresnet`` in a command (also under ``torchrun -m idresnet.cli.main``)."""
    argv = list(cmd.argv)
    while "=" in argv[0] and argv[0].split("=")[0].isidentifier():  # VAR=value before the command
        argv = argv[1:]
    if argv[0] == "srun" and "torchrun" in argv:  # a SLURM job step running torchrun
        argv = argv[argv.index("torchrun") :]
    if argv[0] == "idresnet":
        return argv[1:]
    if argv[0] == "torchrun" and "idresnet.cli.main" in argv:
        return argv[argv.index("idresnet.cli.main") + 1 :]
    return None


def _extras() -> set[str]:
    """The extras of pyproject.toml's [project.optional-dependencies] (no tomllib on Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]", 1)[1]
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*=", text.split("\n[", 1)[0], re.M))


@pytest.mark.parametrize("cmd", COMMANDS, ids=ids(COMMANDS))
def test_shell_command_is_complete_and_parses(cmd, capsys):
    assert "..." not in cmd.argv, f"{cmd.id}: an elided command cannot be run or checked: {cmd.text}"
    argv = _idresnet_argv(cmd)
    if argv is not None:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{cmd.id}: `{cmd.text}` does not parse ({exc.code}): {capsys.readouterr().err.strip()}")
    elif cmd.argv[0] in ("python", "bash") and cmd.argv[1] != "-m":
        assert (ROOT / cmd.argv[1]).is_file(), f"{cmd.id}: no script {cmd.argv[1]}"
    elif cmd.argv[0] == "pip":
        for spec in cmd.argv[2:]:
            if spec.startswith(("idresnet[", ".[")):
                extras = set(spec.split("[")[1].rstrip("]").split(","))
                assert extras <= _extras(), f"{cmd.id}: no extra {sorted(extras - _extras())} in pyproject.toml"
    else:
        assert cmd.argv[:3] == ("python", "-m", "pytest") or cmd.argv[0] in ("mkdir", "cp", "sbatch"), (
            f"{cmd.id}: the docs test does not know how to check `{cmd.text}`"
        )


def test_every_not_run_and_fast_entry_names_a_command_or_block():
    unused = [key for key in NOT_RUN if not any(not_run_reason(c) == NOT_RUN[key] for c in COMMANDS)]
    assert not unused, f"NOT_RUN entries that match no command of the docs: {unused}"
    for table in (FAST_RUNS, NOT_RUN_PYTHON):
        unused = [key for key in table if not any(b.path == key[0] and b.text.startswith(key[1]) for b in BLOCKS)]
        assert not unused, f"FAST_RUNS / NOT_RUN_PYTHON entries that match no block of the docs: {unused}"


NOT_RUN_COMMANDS = [c for c in COMMANDS if not_run_reason(c)]


@pytest.mark.parametrize("cmd", NOT_RUN_COMMANDS, ids=ids(NOT_RUN_COMMANDS))
def test_not_run(cmd):
    pytest.skip(f"not run: {not_run_reason(cmd)}: {cmd.text}")


def test_generated_key_tables_of_training_md_are_current():
    from idresnet.training.config import FIELDS
    from idresnet.training.keydocs import stale_parts

    text = (ROOT / "docs" / "training.md").read_text()
    assert "<!-- generated: keys" in text and "<!-- generated: resume-mutable" in text
    assert not stale_parts(text), "docs/training.md is stale: run python -m idresnet.training.keydocs"
    assert all(f"| `{name}` |" in text for name in FIELDS)


# ---------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return Fixtures(tmp_path_factory.mktemp("doc-fixtures"))


@pytest.fixture
def work(tmp_path, monkeypatch, fixtures):
    """The working folder of one block: work/ (its parent holds ../shared/...), an empty
    cache, and as the download site a local folder with the tiny CIFAR archives (whose md5
    stands in for the published one)."""
    from dataclasses import replace

    from idresnet.data import cifar
    from idresnet.files import file_digest

    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("IDRESNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # pretrained=True: torch.hub's cache, empty
    monkeypatch.delenv("IDRESNET_WEIGHTS_URL", raising=False)
    for name, archive in (("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python.tar.gz")):
        source = fixtures.get(archive)
        monkeypatch.setitem(cifar.SPECS, name, replace(cifar.SPECS[name], md5=file_digest(source, "md5")))
    monkeypatch.setenv(cifar.ENV_URL, source.parent.as_uri())
    return folder


def _marks(block):
    return () if is_fast(block) else (pytest.mark.slow,)


RUN_SHELL = [b for b in SHELL_BLOCKS if any(not not_run_reason(c) for c in commands(b))]


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=_marks(b)) for b in RUN_SHELL])
def test_shell_block_runs(block, work, fixtures, capsys):
    make_files(work, fixtures, files_named(block.text))
    for cmd in commands(block):
        if not_run_reason(cmd):
            continue
        argv = _idresnet_argv(cmd)
        assert argv is not None, f"{cmd.id}: only idresnet commands are run; add `{cmd.text}` to NOT_RUN"
        argv = [_substitute_word(word, work, fixtures) for word in argv]
        argv = SHRINK.get(argv[0], list)(argv)
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0 and "Traceback" not in out.err, f"{cmd.id}: `idresnet {' '.join(argv)}` exit {code}\n{out.err}"


def _substitute_word(word, work, fixtures) -> str:
    flag, sep, value = word.partition("=")
    if sep and flag.startswith("--"):
        return f"{flag}={substitute(value, work, fixtures)}"
    return substitute(word, work, fixtures)


def _python_source(block, work, fixtures) -> str:
    text = block.text
    for word in PLACEHOLDERS:
        literal = word if word.startswith('"') else f'"{word}"'
        if literal in text:
            if word == '"cuda"' and torch.cuda.is_available():
                continue
            text = text.replace(literal, f'"{substitute(word, work, fixtures)}"'.replace('""', '"'))
    for old, new in PYTHON_SHRINK.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=_marks(b)) for b in PYTHON_BLOCKS])
def test_python_block_runs(block, work, fixtures, monkeypatch):
    import idresnet.training

    reason = next((why for (path, start), why in NOT_RUN_PYTHON.items() if _starts(block, path, start)), None)
    if reason:
        pytest.skip(f"not run: {reason}")

    real = idresnet.training.TrainConfig

    def small_config(**values):  # the example's config at the sizes of the docs test
        kwargs = {**values.get("model_kwargs", {}), "width": 0.25}
        return real(**{**values, **TRAIN_VALUES, "model_kwargs": kwargs})

    monkeypatch.setattr(idresnet.training, "TrainConfig", small_config)
    make_files(work, fixtures, files_named(block.text))
    source = _python_source(block, work, fixtures)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, block.id, "exec"), {"__name__": "__docs__"})


def test_files_and_placeholders_are_used():
    """Every stand-in of docfixtures.py is still named by some block."""
    text = "\n".join(b.text for b in BLOCKS)
    assert not [n for n in FILES if not any(p.strip() in text for p in n.split(","))]
    assert not [w for w in PLACEHOLDERS if w.strip('"') not in text]


def test_train_shrinking_keeps_the_docs_flags_and_scales_by_budget():
    from docfixtures import shrink_train

    argv = ["train", "--model", "m", "--model-kwargs", "shortcut=scaling", "--budget", "0.002"]
    out = shrink_train(argv)
    assert out[:3] == ["train", "--model", "m"] and out[3:6] == ["--model-kwargs", "width=0.25", "shortcut=scaling"]
    assert out[out.index("--iterations") + 1] == "1000" and out[out.index("--lr-milestones") + 1] == "500"
    assert shrink_train(["train", "--resume", "--out", "r"]) == ["train", "--resume", "--out", "r", "--no-progress"]
    assert "--iterations" in shrink_train(["train", "--model", "m", "--resume", "auto"])  # it may start a run


def test_word_substitution(tmp_path, fixtures):
    work = tmp_path / "w"
    assert _substitute_word("--out=/tmp/smoke", work, fixtures) == f"--out={work / 'tmp-smoke'}"
    assert _substitute_word("runs/pre164", work, fixtures) == "runs/pre164"


def test_docs_paths_exist():
    """Relative links of the docs' files point at files (a renamed doc breaks none)."""
    missing = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" not in target and not (path.parent / target).exists():
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not missing, missing
