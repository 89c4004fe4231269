"""``idresnet analyze``: signal and gradient norms per residual unit (Eqs. 4-8).

Measures, for one batch of real images, the RMS of each unit's input x_l and of the
gradient dE/dx_l, at initialisation (or from trained weights), for one or several
models and unit variants; writes propagation.csv, propagation.md and a figure.
"""

from __future__ import annotations

from pathlib import Path

from idresnet.analysis.propagation import VARIANTS


def add_parser(sub, name):
    p = sub.add_parser(name, help="measure signal and gradient propagation through depth", description=__doc__)
    p.add_argument(
        "--model",
        nargs="+",
        default=None,
        help="one or more registered model names (with --weights: default the recorded model)",
    )
    p.add_argument(
        "--variant",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"unit variants to compare: {', '.join(VARIANTS)} (default: the model as named)",
    )
    p.add_argument("--model-kwargs", nargs="+", default=[], metavar="KEY=VALUE", help="extra model options")
    p.add_argument("--dataset", default="cifar10", help="cifar10, cifar100, folder or synthetic")
    p.add_argument("--data", default=None, help="path of the dataset (archive, folder or image folder)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--zero-residual",
        action="store_true",
        help="zero each residual branch's last conv (F = 0: Eqs. 5 and 8 hold exactly)",
    )
    p.add_argument(
        "--weights", default=None, help="a .safetensors file or run folder to analyse instead of the initialisation"
    )
    p.add_argument("--out", default="runs/analyze", help="output folder (default: runs/analyze)")
    p.set_defaults(func=run)


def real_batch(dataset: str, data, batch_size: int, seed: int):
    """The first ``batch_size`` test images, normalised as in training."""
    from idresnet.data import DeviceLoader, load_dataset

    ds = load_dataset(dataset, data, seed=seed)
    mean, std = ds.channel_stats()
    n = min(batch_size, len(ds.test_labels))
    loader = DeviceLoader(ds.test_images[:n], ds.test_labels[:n], batch_size=n, train=False, mean=mean, std=std)
    images, labels = next(iter(loader.epoch(0)))
    return images, labels, ds


def run(args) -> int:
    from idresnet.analysis.sweep import SUMMARY_COLUMNS, analyze, summary_rows, write_outputs
    from idresnet.cli.models import format_table
    from idresnet.errors import UsageError
    from idresnet.training.config import parse_model_kwargs

    if args.batch_size < 2:
        raise UsageError(f"--batch-size must be at least 2 (BN in training mode), got {args.batch_size}")
    model_kwargs = parse_model_kwargs(args.model_kwargs)
    state_dict = None
    if args.weights:
        from idresnet.weights import read_weights

        if (args.model and len(args.model) > 1) or args.variant:
            raise UsageError("--weights analyses one trained model: at most one --model and no --variant")
        state_dict, record, _ = read_weights(args.weights)
        args.model = args.model or [record.model]
        if args.model[0] is None:
            raise UsageError("the weights do not record their model; pass --model NAME")
        if args.model[0] == record.model:
            model_kwargs = {**record.model_kwargs, **model_kwargs}
    if not args.model:
        raise UsageError("name at least one --model (see `idresnet models`)")
    images, labels, ds = real_batch(args.dataset, args.data, args.batch_size, args.seed)
    results = analyze(
        args.model,
        args.variant or [None],
        images,
        labels,
        ds.num_classes,
        model_kwargs=model_kwargs,
        zero_residual=args.zero_residual,
        state_dict=state_dict,
        seed=args.seed,
    )
    when = "trained weights" if args.weights else "initialisation"
    title = f"Signal and gradient propagation at {when}; {ds.description}, batch {len(labels)}"
    written = write_outputs(results, Path(args.out), title)
    print(format_table(list(summary_rows(results)), columns=SUMMARY_COLUMNS))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
