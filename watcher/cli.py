"""The `digit-watcher` command: run, predict, train, evaluate, check, template, report, review, init, unit."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import structlog

from watcher.service import config as configuration
from watcher.service.config import ConfigError
from watcher.vocabulary import Event, ExitCode

if TYPE_CHECKING:
    from watcher.forms.template import Template
    from watcher.ledger.record import Reading
    from watcher.model.classify import Classifier
    from watcher.service.daemon import Daemon
    from watcher.service.metrics import Metrics

TEMPLATES_HELP = "with --corrections: the form templates (forms.templates), to learn from form fields' decisions too"
DEFAULT_MODEL = Path("models/mnist-cnn")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from watcher.model.classify import ModelError

    try:
        return int(args.command(args))
    except (ConfigError, ModelError) as exc:
        print(f"digit-watcher: {exc}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digit-watcher", description="Read handwritten digits off scans dropped into an inbox folder."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    config_help = f"config file (default: ${configuration.CONFIG_ENV} or ./config.yaml)"
    _add_run(commands, config_help)
    _add_predict(commands, config_help)
    _add_train(commands)
    _add_evaluate(commands)
    _add_check(commands, config_help)
    _add_template(commands)
    _add_report(commands, config_help)
    _add_review(commands, config_help)
    _add_init(commands)
    _add_unit(commands, config_help)
    return parser


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser], config_help: str) -> None:
    run = commands.add_parser("run", help="watch the inbox (the daemon, in the foreground)")
    run.add_argument("--config", type=Path, help=config_help)
    run.add_argument("--once", action="store_true", help="process what is in the inbox now, then exit")
    run.set_defaults(command=_run)


def _add_predict(commands: argparse._SubParsersAction[argparse.ArgumentParser], config_help: str) -> None:
    predict = commands.add_parser("predict", help="classify files in place (nothing moved, no CSV)")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--config", type=Path, help=config_help)
    predict.add_argument(
        "--model", type=Path, help="model folder (default: the config's model.path, else the shipped model)"
    )
    predict.set_defaults(command=_predict)


def _add_train(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = commands.add_parser("train", help="train, evaluate and write a new model version")
    train.add_argument("--data", type=Path, help="mnist.npz (default: download with Keras)")
    train.add_argument(
        "--epochs",
        type=int,
        help="training epochs (default: 24, as the shipped model; 4 with --corrections; 3 with --reader)",
    )
    train.add_argument(
        "--corrections",
        type=Path,
        metavar="RESULTS",
        help="fine-tune the served version on the review decisions in this results CSV (or folder of them)",
    )
    train.add_argument("--templates", type=Path, metavar="FOLDER", help=TEMPLATES_HELP)
    train.add_argument(
        "--from",
        dest="base",
        type=Path,
        metavar="VERSION",
        help="start from this version folder's weights at a lower rate, instead of from scratch",
    )
    train.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    train.add_argument(
        "--reader",
        action="store_true",
        help="train the sequence reader for whole numbers and serve it beside the --from version's digit model",
    )
    train.add_argument("--real", type=Path, help="real-digits.npz (USPS and ARDIS digits) to learn from too")
    train.add_argument("--rows", type=Path, help="--reader: the register cells folder (train/ and validation/)")
    train.add_argument("--resume", action="store_true", help="--reader: go on from the last checkpoint")
    train.add_argument(
        "--cache", type=Path, default=Path(".cache/reader"), help="--reader: rendered fields and checkpoints"
    )
    train.add_argument("--fields", type=int, help="--reader: synthetic training fields (default: 80000)")
    train.add_argument(
        "--average",
        type=Path,
        action="append",
        default=[],
        metavar="CHECKPOINTS",
        help="--reader, repeatable: serve the mean of the readers last checkpointed in these folders instead of "
        "training one (the fields then only measure BatchNorm's statistics)",
    )
    train.add_argument(
        "--rejudge",
        action="store_true",
        help="--reader: serve the --from version's own reader again, with its judge fitted afresh (no training)",
    )
    train.add_argument(
        "--out", type=Path, default=DEFAULT_MODEL, help="model folder to add a version to (default: models/mnist-cnn)"
    )
    train.set_defaults(command=_train)


def _add_evaluate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser("evaluate", help="accuracy on the MNIST test split, confusion matrix picture")
    evaluate.add_argument("--data", type=Path, help="mnist.npz (default: download with Keras)")
    evaluate.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="model folder or version folder (default: models/mnist-cnn)"
    )
    evaluate.add_argument("--report", type=Path, help="write the confusion matrix picture here (PNG)")
    evaluate.add_argument(
        "--corrections",
        type=Path,
        metavar="RESULTS",
        help="also the accuracy on the review decisions `train --corrections` holds back (results CSV or folder)",
    )
    evaluate.add_argument("--templates", type=Path, metavar="FOLDER", help=TEMPLATES_HELP)
    evaluate.set_defaults(command=_evaluate)


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser], config_help: str) -> None:
    check = commands.add_parser("check", help="validate the config, load the model, check the folders")
    check.add_argument("--config", type=Path, help=config_help)
    check.set_defaults(command=_check)


def _add_template(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    template = commands.add_parser(
        "template", help="draft a form template from a blank form: its boxes and comb cells found and numbered"
    )
    template.add_argument("reference", type=Path, metavar="REFERENCE", help="the blank form (PNG, JPEG, TIFF or PDF)")
    template.add_argument("--out", type=Path, help="the template to write (default: REFERENCE's name, .yaml)")
    template.set_defaults(command=_template)


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser], config_help: str) -> None:
    report = commands.add_parser("report", help="write an HTML report of the results")
    report.add_argument("--config", type=Path, help=config_help)
    report.add_argument("--results", type=Path, help="results CSV (default: the config's paths.results)")
    report.add_argument(
        "--out", type=Path, default=Path("report.html"), help="HTML file to write (default: report.html)"
    )
    report.set_defaults(command=_report)


def _add_review(commands: argparse._SubParsersAction[argparse.ArgumentParser], config_help: str) -> None:
    review = commands.add_parser("review", help="serve the review queue to a browser (prints its URL with a token)")
    review.add_argument("--config", type=Path, help=config_help)
    review.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default: 8765)")
    review.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    review.add_argument("--reviewer", help="the name decisions are recorded under (default: the OS user)")
    review.set_defaults(command=_review)


def _add_init(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser("init", help="write a commented config.yaml and the inbox folders (never overwriting)")
    init.add_argument("folder", nargs="?", type=Path, default=Path("."), metavar="DIR", help="where (default: .)")
    init.set_defaults(command=_init)


def _add_unit(commands: argparse._SubParsersAction[argparse.ArgumentParser], config_help: str) -> None:
    unit = commands.add_parser("unit", help="print a hardened systemd unit that starts this installation")
    unit.add_argument("--user", action="store_true", help="for your own service manager (systemctl --user)")
    unit.add_argument("--config", type=Path, help=f"with --user: the config it runs ({config_help[1:-1]})")
    unit.add_argument(
        "--socket", action="store_true", help="with --user: print the socket unit for the config's metrics port"
    )
    unit.set_defaults(command=_unit)


def _ready_config(
    args: argparse.Namespace, *, log_to: TextIO = sys.stdout, quiet: bool = False
) -> configuration.Config:
    """Load the config, set up logging (only warnings when `quiet`) and prepare the folders."""
    from watcher.service import logs

    config = configuration.load(configuration.config_path(args.config))
    level = "warning" if quiet and config.log.level in ("debug", "info") else config.log.level
    logs.configure(format=config.log.format, level=level, stream=log_to)
    configuration.prepare_folders(config)
    return config


def _run(args: argparse.Namespace) -> int:
    # With --once on a terminal the progress bar tells the story; per-file lines would tear it apart.
    config = _ready_config(args, quiet=args.once and sys.stderr.isatty())
    from watcher.model.classify import load_classifier
    from watcher.model.reload import ModelReloader
    from watcher.service.daemon import Daemon
    from watcher.service.metrics import Metrics
    from watcher.service.notify import Notifier

    classifier = load_classifier(config.model.path)
    metrics = Metrics()
    _serve_metrics(config, metrics)
    daemon = Daemon(
        config,
        classifier,
        templates=_templates(config),
        notifier=Notifier.from_environ(),
        metrics=metrics,
        reloader=None if args.once else ModelReloader(config.model.path, classifier),
    )
    _handle_signals(daemon)
    try:
        if not args.once:
            return daemon.run()
        with _progress_bar(config) as progress:
            return daemon.run(once=True, progress=progress)
    finally:
        metrics.close()


def _serve_metrics(config: configuration.Config, metrics: Metrics) -> None:
    """Serve metrics on the socket the service manager passed (socket activation), whether or not the config
    names a port; else on 127.0.0.1:metrics.port when it is set."""
    from watcher.service import activation

    passed = activation.passed_socket()
    if passed is not None:
        metrics.serve_on(passed)
    elif config.metrics.port is not None:
        try:
            metrics.serve(config.metrics.port)
        except OSError as exc:
            # In the user unit's sandbox the port is its socket unit's to open: say so rather than only why not.
            hint = " (install the socket unit `unit --user --socket` prints)" if exc.errno == errno.EAFNOSUPPORT else ""
            raise ConfigError(
                f"metrics.port: cannot listen on 127.0.0.1:{config.metrics.port}: {exc.strerror or exc}{hint}"
            ) from None
    else:
        return
    # Port 0 asks for any free port, and a passed socket's is the socket unit's: say where, for scrapers and tests.
    structlog.get_logger().info(Event.METRICS_SERVING, url=metrics.url)


def _handle_signals(daemon: Daemon) -> None:
    """The first SIGTERM/SIGINT asks for a clean stop; a second one stops at once (still safe: see commit.py)."""

    def stop(signum: int, frame: object) -> None:
        if daemon.stopping:
            raise SystemExit(1)
        daemon.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda signum, frame: daemon.hangup())


@contextmanager
def _progress_bar(config: configuration.Config) -> Iterator[Callable[[int], object] | None]:
    """A progress bar for `run --once` on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    from watcher.intake.observe import Scope

    total = len(
        Scope.of(
            config.paths.inbox,
            extensions=config.watch.extensions,
            recursive=config.watch.recursive,
            skipped=config.written_in_inbox,
        ).names()
    )
    with tqdm(total=total, unit="file", file=sys.stderr) as bar:
        yield bar.update


def _predict(args: argparse.Namespace) -> int:
    from watcher.service import logs

    logs.configure(stream=sys.stderr)
    model_path, mode = _configured_model(args.config)
    model_path = args.model or model_path
    from watcher.ledger.record import reading_cells
    from watcher.model.classify import load_classifier

    classifier = load_classifier(model_path)
    for given in args.files:
        path = given.resolve() if given.is_symlink() else given
        for page_count, reading in _read_in_place(path, classifier, mode=mode):
            cells = reading_cells(reading)
            if args.json:
                line = {"file": os.fspath(given), "page": reading.page, "model": classifier.version, **cells._asdict()}
                print(json.dumps(line, ensure_ascii=False))
            else:
                page = f" page {reading.page}" if page_count > 1 else ""
                confidence = f" ({cells.confidence})" if cells.confidence else ""
                detail = f" - {cells.detail}" if cells.detail else ""
                print(f"{given}{page}: {cells.prediction or cells.status}{confidence}{detail}")
    return 0


def _read_in_place(path: Path, classifier: Classifier, *, mode: str) -> Iterator[tuple[int, Reading]]:
    """Every page of one file, read as the daemon reads it: (the file's page count, a page's reading)."""
    from watcher.intake.limits import LimitsConfig
    from watcher.recognise import prepare, read
    from watcher.service.config import RecognitionConfig

    first_page = 1
    while True:
        prepared = prepare(
            path,
            path.name,
            first_page,
            limits=LimitsConfig(),
            mode=mode,
            pdf_dpi=RecognitionConfig().pdf_dpi,
            pictures=False,
            cut=classifier.reader is None,
        )
        (readings,) = read([prepared], classifier, review_below=None)
        yield from ((prepared.page_count, reading) for reading in readings)
        if prepared.error or not prepared.pages or prepared.pages[-1].number >= prepared.page_count:
            return
        first_page = prepared.pages[-1].number + 1


def _configured_model(given_config: Path | None) -> tuple[Path, str]:
    """The model folder and recognition mode `predict` uses: the config's, or without one the shipped model and the
    default recognition settings."""
    path = configuration.config_path(given_config)
    if given_config is None and not path.exists():
        return configuration.ModelConfig().path, configuration.RecognitionConfig().mode
    config = configuration.load(path)
    return config.model.path, config.recognition.mode


TRAIN_EXTRA = "pip install 'digit-watcher[train]'"


class MissingExtra(ConfigError):
    """A command that needs the [train] extra, run where only serving is installed."""


def _require(command: str, *modules: str) -> None:
    """Fail in one line, before any work, when a module that only the [train] extra installs is absent."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise MissingExtra(f"{command} needs {module}, which serving does not install: {TRAIN_EXTRA}")


def _train(args: argparse.Namespace) -> int:
    _require("train", "tensorflow", "keras")
    if args.corrections is not None:
        from watcher.model import finetune

        epochs = finetune.DEFAULT_EPOCHS if args.epochs is None else args.epochs
        return finetune.run(
            corrections=args.corrections,
            templates=args.templates,
            data=args.data,
            epochs=epochs,
            seed=args.seed,
            out=args.out,
        )
    if args.reader:
        return _train_reader(args)
    from watcher.model import train

    return train.run(
        data=args.data,
        epochs=24 if args.epochs is None else args.epochs,
        seed=args.seed,
        out=args.out,
        base=args.base,
        real=args.real,
    )


def _train_reader(args: argparse.Namespace) -> int:
    from watcher.model import train_reader

    missing = [
        flag
        for flag, value in (("--data", args.data), ("--real", args.real), ("--rows", args.rows), ("--from", args.base))
        if value is None
    ]
    if missing:
        print(f"digit-watcher train --reader: needs {', '.join(missing)}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    return train_reader.run(
        mnist=args.data,
        real=args.real,
        rows=args.rows,
        base=args.base,
        out=args.out,
        epochs=train_reader.EPOCHS if args.epochs is None else args.epochs,
        seed=args.seed,
        resume=args.resume,
        cache=args.cache,
        fields=args.fields or train_reader.TRAINING_FIELDS,
        average=tuple(args.average),
        rejudge=args.rejudge,
    )


def _evaluate(args: argparse.Namespace) -> int:
    # Evaluation itself runs on LiteRT; the Keras download and the picture need the [train] extra.
    if args.data is None:
        _require("evaluate without --data", "keras")
    if args.report is not None:
        _require("evaluate --report", "matplotlib")
    from watcher.model import evaluate

    return evaluate.run(
        data=args.data,
        model=args.model,
        report=args.report,
        corrections=args.corrections,
        templates=args.templates,
    )


def _check(args: argparse.Namespace) -> int:
    config = _ready_config(args, log_to=sys.stderr)
    from watcher.model.classify import load_classifier

    classifier = load_classifier(config.model.path)
    templates = _templates(config)
    forms = f", form templates {', '.join(template.name for template in templates)}" if templates else ""
    print(f"ok: {config.source} (inbox {config.paths.inbox}, model {classifier.version}{forms})")
    return 0


def _templates(config: configuration.Config) -> tuple[Template, ...]:
    """The config's form templates, each validated (none without forms.templates); a mistake is a ConfigError."""
    if config.forms.templates is None:
        return ()
    from watcher.forms.template import TemplateError, load_templates

    try:
        return load_templates(config.forms.templates)
    except TemplateError as exc:
        raise ConfigError(str(exc)) from None


def _template(args: argparse.Namespace) -> int:
    from watcher.forms.draft import find_fields, write_draft
    from watcher.forms.template import TemplateError, load_template, read_reference

    out = args.out or args.reference.with_suffix(".yaml")
    if out.exists():
        raise ConfigError(f"{out}: already exists; remove it or give another --out")
    try:
        grey = read_reference(args.reference, where=args.reference)
        if not find_fields(grey):
            raise TemplateError(f"{args.reference}: no printed boxes found (a box is a ruled rectangle, empty)")
        fields, picture = write_draft(args.reference, grey, out)
        load_template(out)  # the draft must pass `check` as it is, its reference's features included
    except TemplateError as exc:
        raise ConfigError(str(exc)) from None
    kinds = ", ".join(
        f"field{number} {field.kind}" + (f" of {field.cells} cells" if field.kind == "comb" else "")
        for number, field in enumerate(fields, start=1)
    )
    print(f"wrote {out}: {len(fields)} fields ({kinds}); {picture} shows each box numbered as its field")
    return 0


def _report(args: argparse.Namespace) -> int:
    config = configuration.load(configuration.config_path(args.config))
    from watcher.report import summary as report

    try:
        return report.run(results=args.results or config.paths.results, out=args.out, root=config.root)
    except report.ReportError as exc:
        print(f"digit-watcher: {exc}", file=sys.stderr)
        return 1


def _review(args: argparse.Namespace) -> int:
    # The URL goes to stdout alone, where a person (or a test) reads it; the log lines to stderr.
    config = _ready_config(args, log_to=sys.stderr)
    from watcher.review import serve

    return serve.run(config, host=args.host, port=args.port, reviewer=args.reviewer, templates=_templates(config))


def _init(args: argparse.Namespace) -> int:
    from watcher.service.starter import init

    started = init(args.folder)
    for path in started.created:
        print(f"created {_shown(path)}")
    for path in started.left_alone:
        print(f"left alone {_shown(path)}: already there")
    # Plain `run` only where it would find this config: not with $DIGIT_WATCHER_CONFIG naming another.
    runs_here = configuration.config_path(None).resolve() == started.config.resolve()
    print(f"next: drop scans into {started.inbox}/, then run")
    print(f"  digit-watcher run{'' if runs_here else f' --config {shlex.quote(str(started.config))}'}")
    return 0


def _shown(path: Path) -> str:
    return f"{path}/" if path.is_dir() else str(path)


def _unit(args: argparse.Namespace) -> int:
    from watcher.service import unit

    if not args.user:
        if args.config is not None:
            raise ConfigError("unit --config: only with --user (the system unit runs /etc/digit-watcher/config.yaml)")
        if args.socket:
            raise ConfigError("unit --socket: only with --user (the system unit serves its metrics port itself)")
        print(unit.system_unit(unit.installed_program()), end="")
        return 0
    config = configuration.load(configuration.config_path(args.config))
    print(unit.user_socket(config) if args.socket else unit.user_unit(unit.installed_program(), config), end="")
    return 0
