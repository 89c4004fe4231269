"""The training loop: SGD on the paper's schedule, a plain loop with no framework.

One iteration: set the learning rate of this iteration (a pure function of it), forward
under autocast, cross-entropy, backward, SGD step, add loss and errors to on-device
sums. At an iteration that is due (every ``log_interval``, evaluation, checkpoint, and
the last), the sums are synced: a non-finite loss stops the run as 'diverged'; a row
goes to metrics.csv; a checkpoint is written; a pending Ctrl-C / SIGTERM stops the run
as 'interrupted' after its checkpoint. At an evaluation the checkpoint (when one is due,
always at the last iteration) comes first and records the row that awaits the
evaluation (``pending_eval``); a stop request during the evaluation abandons it at its
next batch, and a resume runs it before training on: neither a Ctrl-C nor a kill during
an evaluation loses the training before it.

Resuming restores model, optimizer, iteration, RNG states and the metric sums from the
checkpoint; the data order is a function of (seed, epoch) and the checkpoint's batch
within the epoch, so a resumed CPU run is bit-identical to an uninterrupted one (an
evaluation draws no random numbers and changes no state, so running it after the
resume changes nothing either).

The time spent waiting for the next batch is measured around the loader (streamed
datasets record it per step in metrics.csv, beside the whole step's time).

The code reads top to bottom: :func:`train` joins the processes and handles signals;
``_run`` locks the run folder and plans (fresh, resume, done); ``_Trainer`` declares its
state in ``__init__``, then sets up the device, data, model, optimizer and records,
restores a resumed run, trains (``_loop``, ``_step``: :func:`idresnet.training.step.sgd_step`)
and finishes.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from idresnet.data import locate
from idresnet.errors import ConfigError, UsageError
from idresnet.files import remove_stale_temporaries
from idresnet.networks import build_network, count_parameters
from idresnet.progress import LineProgress, is_terminal, progress, quiet, say, working
from idresnet.seeding import rng_state, seed_everything, set_rng_state
from idresnet.training import allocator, compilation, distributed, precision, rundir, runtime, validation
from idresnet.training.config import TrainConfig, to_plain
from idresnet.training.evaluation import EvaluationStopped
from idresnet.training.loggers import make_loggers
from idresnet.training.metrics import Meter, MetricsLog, RunResult, finite_or_none, write_status
from idresnet.training.recipe import fail_threshold, reduced_schedule_message
from idresnet.training.rundata import RunData, build_data
from idresnet.training.schedule import WARMUP_WINDOW, Schedule, build_schedule
from idresnet.training.step import sgd, sgd_step
from idresnet.training.threads import resolve_threads
from idresnet.version import __version__
from idresnet.weights import WeightsRecord, load_latest, runfiles, save_checkpoint, save_weights

STOP_SYNC = 10  # under several processes, ranks agree on a stop request every N iterations
MAX_EVALUATIONS = 20  # default: about 20 evaluations per run ...
EVAL_SHARE = 0.1  # ... but evaluation costs at most ~10% of training
MAX_CHECKPOINT_INTERVAL = 500  # default: a checkpoint at every evaluation, and at least every 500 iterations
LOSS_PEEK_S = 5.0  # the progress line's running loss is refreshed at most this often (a device sync)


def default_eval_interval(iterations: int, batch_size: int, test_images: int) -> int:
    """Evaluate about 20 times per run, fewer when that would cost more than ~10% of the
    training time (a test image costs about a third of a training image: forward only).
    So a short run (the README's 1% of the schedule) evaluates twice, a full one 20 times."""
    affordable = EVAL_SHARE * iterations * batch_size / (max(test_images, 1) / 3)
    evaluations = max(1, min(MAX_EVALUATIONS, int(affordable)))
    return max(1, round(iterations / evaluations))


def _warn(message: str) -> None:
    print(f"idresnet: warning: {message}", file=sys.stderr, flush=True)


def train(cfg: TrainConfig) -> RunResult:
    """Train (or resume, or return the recorded result of) the run that ``cfg`` describes."""
    dist = distributed.init(runtime.device_type(cfg.device))
    clean, threads_before = False, torch.get_num_threads()
    try:  # --no-progress: no line at all (data loading too), and none from ranks other than 0
        with runtime.StopSignals() as stop, quiet(cfg.progress is False or not dist.is_main):
            result = _run(cfg, dist, stop)
        clean = True
        return result
    finally:  # after an error on one rank the others never reach a final barrier: skip it
        distributed.close(dist, barrier=clean)
        torch.set_num_threads(threads_before)  # the run's count (threads: auto) ends with it


def _run(cfg: TrainConfig, dist: distributed.DistInfo, stop: runtime.StopSignals) -> RunResult:
    """Lock the run folder and see what it holds (rank 0), then train it, continue it, or
    return its recorded result."""
    run_dir = Path(distributed.broadcast(cfg.out or rundir.default_out(cfg), dist))
    locks: list[rundir.RunLock] = []
    try:  # the lock first: a bad --out fails before any expensive work
        _on_main(dist, lambda: locks.append(rundir.RunLock.take(run_dir)))
        plan = _on_main(dist, lambda: rundir.plan(run_dir, cfg))
        if plan.action == "done":
            return RunResult.from_status(run_dir, plan.status)
        runtime.check_fits(cfg, dist)
        return _Trainer(cfg, dist, stop, run_dir, resuming=plan.action == "resume").run()
    finally:
        for lock in locks:
            lock.release()


def _on_main(dist: distributed.DistInfo, fn):
    """``fn()`` on rank 0, its result (or its UsageError) on every rank."""
    result = None
    if dist.is_main:
        try:
            result = fn()
        except UsageError as exc:
            result = exc
    result = distributed.broadcast(result, dist)
    if isinstance(result, UsageError):
        raise result
    return result


class _Trainer:
    """One run of a locked run folder: set up, restore (when resuming), train, finish.

    The network has three handles, by role: ``module`` is the bare network (its state dict
    is the checkpoints' and the weights'; its buffers are synced before an evaluation);
    ``eval_model`` the network evaluated (``module``, compiled where asked); and
    ``forward_model`` the network trained (``eval_model``, wrapped by DDP under several
    processes).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        dist: distributed.DistInfo,
        stop: runtime.StopSignals,
        run_dir: Path,
        resuming: bool,
    ):
        # what the run is: fixed from here
        self.cfg, self.dist, self.stop, self.run_dir = cfg, dist, stop, run_dir
        self.resuming = resuming  # continue from the run folder's checkpoint
        self.main = dist.is_main  # rank 0 writes the run folder
        # set up by _setup, in this order
        self.device: torch.device
        self.amp: torch.dtype | None  # the autocast dtype, None for float32
        self.amp_reason: str  # which precision, and why (training/precision.py)
        self.channels_last: bool
        self.compiled: bool  # the training step compiled by inductor
        self.compile_reason: str  # ... and why (training/compilation.py)
        self.malloc_kept: bool  # freed memory stays in the process (no page faults per step)
        self.malloc_reason: str  # ... and why (training/allocator.py)
        self.recorded_info: dict  # run_info of the run being resumed ({} for a new run)
        self.data: RunData
        self.schedule: Schedule
        self.eval_every: int  # iterations between evaluations
        self.ckpt_every: int  # ... and between checkpoints
        self.module: nn.Module  # the network's handles, by role: see the class docstring
        self.eval_model: nn.Module
        self.forward_model: nn.Module
        self.optimizer: torch.optim.Optimizer
        self.record: WeightsRecord  # what the checkpoints and the final weights say about themselves
        self.run_info: dict  # config.yaml's run_info
        self.metrics: MetricsLog  # metrics.csv and the experiment trackers
        # the run's progress: in every checkpoint, restored when resuming
        self.it = 0  # iterations done
        self.meter: Meter  # train loss and errors since the last metrics row, on the device
        self.warmup_meter: Meter  # ... and since the last check of warmup_until_error
        self.best: float | None = None  # the best test error so far, and its iteration
        self.best_it: int | None = None
        self.last_eval: dict | None = None
        self.pending: dict | None = None  # the row of this iteration while it awaits its evaluation
        self.wall0 = 0.0  # wall-clock seconds of the run before this process started
        self.skipped0 = 0  # unreadable images skipped before this process started (all ranks)
        # this process's bookkeeping
        self.t_start = self.t_row = 0.0  # perf_counter at the start, and at the last metrics row
        self.row_it = 0  # the iteration of the last metrics row
        self.data_wait = 0.0  # seconds spent waiting for batches since the last row
        self.bar: LineProgress | Any = None  # the run's progress reporter (a tqdm bar on a terminal)
        self.shown: dict = {}  # the values in the progress line's postfix
        self.peeked = -math.inf  # when the running loss was last put there (time.monotonic)
        self.saved_status: dict | None = None  # status.json as of the newest checkpoint

    def run(self) -> RunResult:
        lines = self.main and self.cfg.progress not in (True, False) and not is_terminal()
        with working(f"preparing {self.run_dir.name}", enabled=lines):  # no silence while data loads
            self._setup()
        ended = None  # how the run ended, for its trackers: its status, None after an error
        try:
            self._start_files()
            result = self._finish(self._loop())
            ended = result.status
            return result
        except OSError as exc:  # a full disk, a revoked permission: the last checkpoint is whole
            where = exc.filename or self.run_dir
            raise UsageError(
                f"{exc.strerror or exc} writing {where}; the last checkpoint is intact: "
                f"make room and continue with idresnet train --resume --out "
                f"{self.run_dir}"
            ) from None
        except KeyboardInterrupt:  # a second Ctrl-C: the checkpoints on disk stand
            ended = "interrupted"
            self._record_abort()
            raise
        finally:
            self.metrics.close(ended)  # the trackers end with the run, however it ended

    # ------------------------------------------------------------ setup

    def _setup(self) -> None:
        self._setup_device()
        self._setup_data()
        self._setup_model()
        self._setup_optimizer()
        if self.resuming:
            self._restore()
        elif self.dist.rank:
            torch.manual_seed(runtime.rank_seed(self.cfg.seed, self.dist.rank))
        self._setup_records()  # last: its trackers' files are closed by run() whatever follows

    def _setup_device(self) -> None:
        """Threads, device, precision and memory format, and what they allow."""
        cfg, dist = self.cfg, self.dist
        info = _on_main(dist, lambda: rundir.read_run_info(self.run_dir)) if self.resuming else {}
        self.recorded_info = info
        if threads := resolve_threads(cfg.threads, torch.get_num_threads(), info.get("threads")):
            torch.set_num_threads(threads)
        self.device = runtime.resolve_device(cfg.device, dist)
        self.malloc_kept, self.malloc_reason = allocator.for_run(cfg.malloc, self.device)  # each process its own
        # rank 0's choice for every rank: the bf16 probe times this process's CPU
        self.amp, self.amp_reason = _on_main(dist, lambda: precision.for_run(cfg.amp, self.device, info.get("amp")))
        if self.main and cfg.amp == runtime.AUTO and self.device.type == "cpu" and cfg.progress is not False:
            say(f"[{rundir.display_name(self.run_dir)}] precision: {self.amp_reason}", sys.stdout)
        if self.main and (slow := runtime.amp_warning(self.amp, self.device)):
            _warn(slow)
        self.channels_last = runtime.resolve_channels_last(cfg.channels_last, self.device)
        if cfg.batch_size % dist.world_size:
            raise ConfigError(
                f"batch_size {cfg.batch_size} (global) is not divisible by the {dist.world_size} processes"
            )
        if cfg.sync_bn and dist.active and self.device.type != "cuda":
            raise ConfigError("sync_bn needs CUDA: SyncBatchNorm has no CPU implementation")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _setup_data(self) -> None:
        """The data (loaders, normalisation, what it records) and the schedule over it."""
        cfg = self.cfg
        if cfg.data is not None:  # recorded absolute, so `idresnet eval` works from anywhere
            cfg.data = str(self._data_path(Path(cfg.data).expanduser()).resolve())
        self.data = build_data(cfg, self.dist, self.device, self.channels_last)
        if split := self.data.val_split:  # the same held-out images on every rank, and as recorded
            validation.check_ranks(split, self.dist)
            if self.resuming:
                warning = _on_main(self.dist, lambda: validation.check_recorded(self.run_dir, split))
                if warning and self.main:
                    _warn(warning)
        self.schedule = build_schedule(cfg, len(self.data.train_loader))
        self.eval_every = cfg.eval_interval or default_eval_interval(
            self.schedule.iterations, cfg.batch_size, self.data.eval_count
        )
        self.ckpt_every = cfg.checkpoint_interval or min(self.eval_every, MAX_CHECKPOINT_INTERVAL)

    def _setup_model(self) -> None:
        """The network, from the seed, on the device, and its handles (see the class docstring)."""
        cfg, dist = self.cfg, self.dist
        seed_everything(cfg.seed)
        module = build_network(cfg.model_spec, self.data.num_classes)  # sized by runtime.check_fits
        if cfg.activation_checkpointing != "none":  # memory for time; results unchanged
            module.set_checkpointing(cfg.activation_checkpointing)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.module = module.to(self.device, memory_format=fmt)
        if cfg.sync_bn and dist.active:
            self.module = nn.SyncBatchNorm.convert_sync_batchnorm(self.module)
        iterations, started = self.schedule.iterations, self.recorded_info.get("compile")
        self.compiled, self.compile_reason = _on_main(
            dist, lambda: compilation.for_run(cfg.compile, self.device, iterations, started)
        )
        # a new run in one process that auto's rule would compile: is the compiled step faster
        # on this machine, for this network?
        measured = cfg.compile == runtime.AUTO and started is None and not dist.active and self.compiled
        if measured:
            height, width, channels = self.data.image_shape  # recorded HWC
            batch = (cfg.batch_size, channels, height, width)
            self.compiled, self.compile_reason = compilation.by_measurement(
                self.compiled,
                self.compile_reason,
                lambda: compilation.measure_speedup(
                    self.module, batch, self.data.num_classes, self.channels_last, self.amp
                ),
            )
        if self.main and cfg.compile == runtime.AUTO and (self.compiled or measured) and cfg.progress is not False:
            say(f"[{rundir.display_name(self.run_dir)}] training step: {self.compile_reason}", sys.stdout)
        self.eval_model = torch.compile(self.module) if self.compiled else self.module  # type: ignore[assignment]
        self.forward_model = self.eval_model
        if dist.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = nn.parallel.DistributedDataParallel(self.eval_model, device_ids=ids)

    def _setup_optimizer(self) -> None:
        """The paper's SGD over every parameter (:func:`idresnet.training.step.sgd`), and the
        meter of its training loss and error."""
        c = self.cfg
        self.optimizer = sgd(self.module.parameters(), self.schedule.lr(0), c.momentum, c.weight_decay, c.nesterov)
        self.meter = Meter(self.device)
        self.warmup_meter = Meter(self.device)

    def _setup_records(self) -> None:
        """The weights record, config.yaml's run_info and the metrics log (and its trackers)."""
        cfg, data = self.cfg, self.data
        self.record = WeightsRecord(
            model=cfg.model,
            model_kwargs=cfg.model_kwargs,
            num_classes=data.num_classes,
            classes=list(data.classes),
            dataset=cfg.dataset,
            dataset_description=data.description,
            image_shape=list(data.image_shape),
            normalization=data.norm,
            dataset_fingerprint=data.fingerprint,
            dataset_args={k: getattr(cfg, k) for k in data.dataset_keys},
        )
        self.run_info = {
            "idresnet_version": __version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "device": str(self.device),
            "device_name": runtime.device_name(self.device),
            "threads": torch.get_num_threads(),
            "world_size": self.dist.world_size,
            "per_process_batch": cfg.batch_size // self.dist.world_size,
            "channels_last": self.channels_last,
            "amp": "bf16" if self.amp else "off",
            "amp_reason": self.amp_reason,
            "compile": self.compiled,
            "compile_reason": self.compile_reason,
            "malloc": "keep" if self.malloc_kept else "system",
            "malloc_reason": self.malloc_reason,
            "activation_checkpointing": cfg.activation_checkpointing,
            "schedule": {
                **self.schedule.record(),
                "eval_interval": self.eval_every,
                "checkpoint_interval": self.ckpt_every,
                "log_interval": cfg.log_interval,
            },
            "model": {**cfg.model_spec.model_info(), "params": count_parameters(self.module)},
            "dataset": data.record(),
            "normalization": {k: v for k, v in data.norm.items() if k != "pixel_mean"},
        }
        # last: the trackers start here (wandb's and mlflow's runs, continued on resume), and
        # nothing may fail between their start and run()'s close
        self.metrics = MetricsLog(
            self.run_dir / runfiles.METRICS,
            enabled=self.main,
            columns=data.columns,
            loggers=make_loggers(cfg.logger, self.run_dir, cfg.to_dict(), self.resuming) if self.main else (),
        )

    def _restore(self) -> None:
        """The progress of the newest whole checkpoint: network, optimizer, RNG states, sums."""
        paths = [self.run_dir / name for name in runfiles.CHECKPOINTS]
        ckpt = _on_main(self.dist, lambda: load_latest(paths, warn=_warn)[0])
        self._check_same_data((ckpt.get("meta") or {}).get("dataset_fingerprint"))
        self.module.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.it = int(ckpt["iteration"])
        self.meter.load(ckpt["meter"])
        if ckpt.get("warmup_end") is not None:  # where warmup_until_error ended the warm-up
            self.schedule = self.schedule.ending_warmup_at(int(ckpt["warmup_end"]))
        if ckpt.get("warmup_window") is not None:
            self.warmup_meter.load(ckpt["warmup_window"])
        self.best, self.best_it = ckpt["best_test_error"], ckpt["best_iteration"]
        self.last_eval, self.wall0 = ckpt["last_eval"], float(ckpt["wall_time_s"])
        self.pending = ckpt.get("pending_eval")  # older checkpoints have none: nothing pending
        self.skipped0 = int(ckpt.get("skipped_images", 0)) if self.main else 0  # a total over ranks
        states = ckpt["rng"]
        if len(states) == self.dist.world_size:
            set_rng_state(states[self.dist.rank])
        elif self.main:
            set_rng_state(states[0])
        else:  # resumed with another number of processes: fresh per-rank draws
            torch.manual_seed(runtime.rank_seed(self.cfg.seed, self.dist.rank, self.it))

    def _data_path(self, data: Path) -> Path:
        """The data of a resumed run that was moved since: found by name near the run."""
        if self.resuming and not data.exists():
            found = locate(data, near=[self.run_dir])
            if found is not None:
                if self.main:
                    _warn(
                        f"the run's data {data} is gone; using {found} (same name, its content "
                        "is checked against the run's)"
                    )
                return found
        return data

    def _check_same_data(self, recorded: dict | None) -> None:
        """Resuming on other data would silently train on it: a one-line error instead."""
        current = self.data.fingerprint
        if not recorded or recorded == current:  # runs of idresnet 0.1 recorded none
            return
        keys = [k for k in sorted(set(recorded) | set(current)) if recorded.get(k) != current.get(k)]
        shown = ", ".join(f"{k} {recorded.get(k)!r:.40} -> {current.get(k)!r:.40}" for k in keys[:3])
        raise ConfigError(
            f"--resume: the data at {self.cfg.data} is not the data {self.run_dir} was "
            f"trained on ({shown}); pass --data with the run's dataset"
        )

    def _start_files(self) -> None:
        self.t_start = self.t_row = time.perf_counter()  # wall time: self.wall0 + since then
        self.row_it = self.it
        self.run_info["resumed_from"] = self.it if self.resuming else None
        self.run_info["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if self.main:
            (self.run_dir / runfiles.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.run_dir)
            remove_stale_temporaries(self.run_dir / runfiles.CHECKPOINT_DIR)
            rundir.write_run_config(self.run_dir, self.cfg, to_plain(self.run_info))
            if self.data.val_split and not self.resuming:
                validation.write(self.run_dir, self.data.val_split)
            # resumed with a pending evaluation: its row is written (again) once evaluated
            self.metrics.start((self.it - (self.pending is not None)) if self.resuming else None)
            self._status("running")

    # ------------------------------------------------------------ loop

    def _loop(self) -> str | None:
        """Train to the end; 'diverged' or 'interrupted' when stopped early."""
        total, per_epoch = self.schedule.iterations, self.schedule.iters_per_epoch
        self.bar = progress(
            total,
            desc=rundir.display_name(self.run_dir),
            unit="it",
            initial=self.it,
            enabled=self.main and self.cfg.progress is not False,
            bar=True if self.cfg.progress is True else None,
        )
        outcome = None
        self.forward_model.train()
        self.stop.arm()  # from here a signal stops the run after a checkpoint
        try:
            if self.pending is not None:  # resumed from a checkpoint taken before an evaluation
                outcome = self._evaluate_pending(saved=True)
            while self.it < total and outcome is None:
                epoch, start = divmod(self.it, per_epoch)
                batches = self.data.train_loader.epoch(epoch, start_batch=start)
                try:
                    while True:
                        t0 = time.perf_counter()
                        batch = next(batches, None)
                        self.data_wait += time.perf_counter() - t0
                        if batch is None:
                            break
                        self._step(*batch)
                        outcome = self._after_step()
                        if outcome or self.it >= total:
                            break
                finally:
                    batches.close()  # stops a streamed epoch's worker processes now
        except RuntimeError as exc:  # torch reports a dead DataLoader worker from anywhere in a step
            error = self.data.loader_failure(exc)
            if error is None:
                raise
            raise error from None
        finally:
            self.bar.close()
        return outcome

    def _step(self, x, y) -> None:
        lr = self.schedule.lr(self.it)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, logits = sgd_step(self.forward_model, self.optimizer, x, y, runtime.autocast(self.device, self.amp))
        self.meter.update(loss.detach(), logits.detach(), y)
        if self.schedule.warming_up_by_error(self.it):
            self.warmup_meter.update(loss.detach(), logits.detach(), y)
        self.it += 1
        self._show_running_loss()
        self.bar.update()

    def _show_running_loss(self) -> None:
        """The mean train loss since the last row (this process's), in the progress line:
        from the first step on, not only at the first metrics row (which may be minutes
        away). Reading it syncs the device, so at most every LOSS_PEEK_S seconds."""
        if not self.main or self.cfg.progress is False or time.monotonic() - self.peeked < LOSS_PEEK_S:
            return
        self.peeked = time.monotonic()
        total, _, n = self.meter.sums.tolist()
        if n:
            self._show(loss=f"{total / n:.3f}", lr=f"{self.schedule.lr(self.it - 1):g}")

    def _show(self, **values) -> None:
        self.shown.update(values)
        self.bar.set_postfix(**self.shown, refresh=False)

    def _after_step(self) -> str | None:
        it, total, dist = self.it, self.schedule.iterations, self.dist
        log, ev, ck = (it % n == 0 or it == total for n in (self.cfg.log_interval, self.eval_every, self.ckpt_every))
        if self._warmup_ends() and not (log or ev):
            log = True  # a metrics row where the warm-up ended
        sync = it % STOP_SYNC == 0 if dist.active else self.stop.requested
        if not (log or ev or ck or sync):
            return None
        flags = torch.stack(
            [
                torch.tensor(float(self.stop.requested), device=self.device),
                (~torch.isfinite(self.meter.sums).all()).float(),
            ]
        )
        stop, diverged = (
            bool(f) for f in distributed.all_reduce_(flags, dist, op=torch.distributed.ReduceOp.MAX).tolist()
        )
        if diverged:
            self._write_row(self._train_row())
            return "diverged"
        if ev:  # the checkpoint first, recording the row that awaits the evaluation
            self.pending = self._train_row()
            if ck or stop:
                self._checkpoint()
            return "interrupted" if stop else self._evaluate_pending(saved=ck)
        if log:
            self._write_row(self._train_row())
        if ck or stop:
            self._checkpoint()
        return "interrupted" if stop else None

    def _warmup_ends(self) -> bool:
        """warmup_until_error: every WARMUP_WINDOW iterations of the warm-up, the training
        error of that window's batches (all ranks); below the threshold, the warm-up ends
        here (the next iteration trains at lr)."""
        if not self.schedule.warming_up_by_error(self.it - 1) or self.it % WARMUP_WINDOW:
            return False
        _, error, _ = self.warmup_meter.take(lambda t: distributed.all_reduce_(t, self.dist))
        threshold = self.schedule.warmup_until_error
        assert threshold is not None
        if not error < threshold:
            return False
        self.schedule = self.schedule.ending_warmup_at(self.it)
        if self.main and self.cfg.progress is not False:
            say(
                f"[{rundir.display_name(self.run_dir)}] warm-up ended at iteration {self.it}: training error "
                f"{error:.2f}% over the last {WARMUP_WINDOW} iterations < {threshold:g}%",
                sys.stdout,
            )
        return True

    def _train_row(self) -> dict:
        """This iteration's metrics row before any evaluation: train loss and error since
        the previous row, the pace, the loader's times."""
        loss, err, _ = self.meter.take(lambda t: distributed.all_reduce_(t, self.dist))
        now = time.perf_counter()
        # the images of the steps timed since t_row: after a resume the meter also holds
        # the restored steps of this row, which ran before the interruption
        timed = (self.it - self.row_it) * self.cfg.batch_size
        data_time, step_time = self._data_times(now)
        return {
            "iteration": self.it,
            "epoch": round(self.schedule.epoch(self.it), 3),
            "lr": self.schedule.lr(self.it - 1),
            "train_loss": loss,
            "train_error": err,
            "images_per_s": timed / max(now - self.t_row, 1e-9),
            "wall_time_s": self._wall(),
            "data_time_s": data_time,
            "step_time_s": step_time,
        }

    def _write_row(self, row: dict) -> None:
        row.update(self.data.row_columns(row["data_time_s"], row["step_time_s"], self._skipped_total()))
        self.metrics.write(**row)
        self._report(row)
        self.t_row, self.row_it, self.data_wait = time.perf_counter(), self.it, 0.0

    def _evaluate_pending(self, saved: bool) -> str | None:
        """Evaluate the pending row's iteration and write the row. ``saved``: a checkpoint
        recording the pending row is on disk; after the evaluation another records the
        evaluated state (but at the last iteration, where the weights follow). A stop
        request during the evaluation abandons it: 'interrupted', with the row pending in
        the checkpoint (written now, if it was not), for --resume to evaluate."""
        row = self.pending
        assert row is not None
        try:
            self._evaluate(row)
        except EvaluationStopped:
            if not saved:
                self._checkpoint()
            return "interrupted"
        self.pending = None
        self._write_row(row)
        if saved and self.it < self.schedule.iterations:
            self._checkpoint()
        return None

    def _evaluate(self, row: dict) -> None:
        """Evaluate at every test loader (eval crop); the first gives the run's test error.
        A single process abandons it at a stop request (:class:`EvaluationStopped`); under
        several, the ranks would have to agree batch by batch, so it runs to its end and
        the request is answered right after it."""
        if self.dist.active:  # every rank evaluates rank 0's BN statistics
            for buf in self.module.buffers():
                torch.distributed.broadcast(buf, 0)
        lines = self.main and self.cfg.progress is not False and isinstance(self.bar, LineProgress)
        res, columns, record = self.data.evaluate(
            self.eval_model,
            final=self.it >= self.schedule.iterations,  # the test set after a validation set, a TTA
            device=self.device,
            amp_dtype=self.amp,
            dist=self.dist,
            report=lines,
            stop=None if self.dist.active else lambda: self.stop.requested,
        )
        self.last_eval = {"iteration": self.it, **record}
        row.update(columns)
        if self.best is None or res["error"] < self.best:
            self.best, self.best_it = res["error"], self.it

    def _data_times(self, now: float) -> tuple[float, float]:
        """Seconds per step waiting for the loader (the slowest rank) and per whole step."""
        steps = max(self.it - self.row_it, 1)
        wait = torch.tensor([self.data_wait], dtype=torch.float64, device=self.device)
        distributed.all_reduce_(wait, self.dist, op=torch.distributed.ReduceOp.MAX)
        return wait.item() / steps, (now - self.t_row) / steps

    def _skipped_total(self) -> int:
        """Unreadable images skipped in the whole run, over all ranks (a collective)."""
        local = torch.tensor([float(self.data.skipped())], dtype=torch.float64, device=self.device)
        distributed.all_reduce_(local, self.dist)
        return self.skipped0 + int(local.item())

    def _report(self, row) -> None:
        if not self.main or self.cfg.progress is False:
            return
        self._show(loss=f"{row['train_loss']:.3f}", lr=f"{row['lr']:g}", img_s=f"{row['images_per_s']:.0f}")
        self.peeked = time.monotonic()
        sets = [on for on in ("val", "test") if f"{on}_error" in row]  # the validation split's, the test set's
        if sets and isinstance(self.bar, LineProgress):
            errors = " ".join(f"{on} err {row[f'{on}_error']:.2f}%" for on in sets)
            say(
                f"[{rundir.display_name(self.run_dir)}] iter {row['iteration']}/{self.schedule.iterations} "
                f"lr {row['lr']:g} train loss {row['train_loss']:.4f} err {row['train_error']:.2f}% "
                f"{errors} ({row['images_per_s']:.0f} img/s)",
                sys.stdout,
            )

    def _checkpoint(self) -> None:
        """Write last.ckpt (rank 0; every rank contributes its RNG state), then status.json:
        a second Ctrl-C meanwhile waits until both are written."""
        states = distributed.gather(rng_state(), self.dist)
        extra = self.data.checkpoint_extra(self._skipped_total())
        if not self.main:
            return
        per_epoch = self.schedule.iters_per_epoch
        state = {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.it,
            "epoch": self.it // per_epoch,
            "batch_in_epoch": self.it % per_epoch,
            "rng": states,
            "meter": self.meter.state(),
            "warmup_end": self.schedule.warmup_iters if self.schedule.warmup_ended else None,
            "warmup_window": self.warmup_meter.state(),
            "best_test_error": self.best,
            "best_iteration": self.best_it,
            "last_eval": self.last_eval,
            "pending_eval": to_plain(self.pending),  # None, or the row awaiting its evaluation
            "wall_time_s": self._wall(),
            "world_size": self.dist.world_size,
            "config": self.cfg.to_dict(),
            "meta": to_plain(self.record.metadata()),
            **extra,
        }
        with self.stop.deferred():
            save_checkpoint(
                self.run_dir / runfiles.CHECKPOINT, state, previous=self.run_dir / runfiles.PREVIOUS_CHECKPOINT
            )
            self._status("running")

    def _wall(self) -> float:
        return self.wall0 + time.perf_counter() - self.t_start

    # ------------------------------------------------------------ end

    def _finish(self, outcome: str | None) -> RunResult:
        final, message = None, None
        if outcome == "diverged":
            status, message = "diverged", f"non-finite training loss by iteration {self.it}"
        elif outcome == "interrupted":
            status, message = "interrupted", f"stopped at iteration {self.it}; resume with --resume"
            if self.pending is not None:
                then = " and trains on" if self.it < self.schedule.iterations else ""
                message = f"stopped at iteration {self.it} before its evaluation ended; --resume evaluates it{then}"
        else:
            final = (self.last_eval or {})["error"]  # the last iteration always evaluates
            threshold = fail_threshold(self.cfg)
            status = "failed" if threshold is not None and final > threshold else "finished"
            if status == "failed":
                message = f"final test error {final:.2f}% > fail_threshold {threshold:g}%"
            elif threshold is None:
                message = reduced_schedule_message(self.cfg, self.schedule)
        wall = round(self._wall(), 3)
        if self.main:
            try:  # the outcome is decided: a signal now waits for its record, then changes nothing
                with self.stop.deferred():
                    if final is not None:
                        final_record = dataclasses.replace(self.record, iteration=self.it, test_error=final)
                        save_weights(self.run_dir / runfiles.WEIGHTS, self.module.state_dict(), final_record)
                    self._status(status, final=final, message=message, wall=wall)
            except KeyboardInterrupt:
                pass
        on, extra = self.data.evaluated_on, self.data.status_extra(self.last_eval, final is not None)
        return RunResult(
            self.run_dir,
            status,
            finite_or_none(final),
            finite_or_none(self.best) if on == "test" else None,  # a validation split: the test set once
            self.it,
            wall,
            self.data.final_errors(self.last_eval) if final is not None else None,
            evaluated_on=on,
            final_val_error=extra.get("final_val_error"),
            best_val_error=finite_or_none(self.best) if on == "val" else None,
            final_tta=extra.get("final_tta"),
        )

    def _record_abort(self) -> None:
        """After a second Ctrl-C: status.json says 'interrupted' as of the newest checkpoint
        (what --resume continues from), not 'running' at an older iteration."""
        if not self.main or self.saved_status is None:
            return
        it = self.saved_status["iteration"]
        if rundir.has_checkpoint(self.run_dir):
            message = f"aborted (a second Ctrl-C); --resume continues from the checkpoint at iteration {it}"
        else:
            message = "aborted (a second Ctrl-C) before the first checkpoint; --resume starts over"
        try:
            with self.stop.deferred():
                fields = {**self.saved_status, "status": "interrupted", "message": message}
                write_status(self.run_dir, **fields, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        except KeyboardInterrupt:
            pass

    def _status(self, status: str, final=None, message=None, wall=None) -> None:
        last: dict = self.last_eval or {}
        extra = self.data.status_extra(self.last_eval, final is not None)
        fields = dict(
            **extra,
            status=status,
            iteration=self.it,
            iterations=self.schedule.iterations,
            epoch=round(self.schedule.epoch(self.it), 3),
            final_test_error=finite_or_none(final),
            final_test_top5_error=finite_or_none(last.get("top5_error")) if final is not None else None,
            # the best of the evaluations during training: on the validation split where there is one
            best_test_error=finite_or_none(self.best) if self.data.evaluated_on == "test" else None,
            best_iteration=self.best_it,
            wall_time_s=round(self._wall(), 3) if wall is None else wall,
            world_size=self.dist.world_size,
            message=message,
        )
        if self.schedule.warmup_until_error is not None:  # where the training error ended the warm-up
            ended = self.schedule.warmup_ended or self.it >= self.schedule.warmup_iters
            fields["warmup_end"] = self.schedule.warmup_iters if ended else None
        if self.data.evaluated_on == "val":
            fields["best_val_error"] = finite_or_none(self.best)
        write_status(self.run_dir, **fields, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if status == "running":  # written at the start and after every checkpoint
            self.saved_status = fields
