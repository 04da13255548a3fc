"""`avatar-runtime config import SRC [-o OUT] [--force]`: the command around the pure conversion.

Side effects live here only: reading SRC, the date, validating the result with our own `load_config` (from a
temporary file next to OUT, so a failed validation leaves nothing behind), the atomic rename, stdout/stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

from ..config import ConfigError, load_config
from .openavatarchat import convert
from .render import render_report, render_yaml
from .source import SourceError, parse_source

EPILOG = """\
The converted YAML holds only the settings that differ from our defaults, with comments naming where each came
from; secrets (API keys, TURN passwords) are never copied: the report says which environment variable to set.
The report goes to stderr: mapped (n), needs your action (n), not mapped (n) with each key path and why.

exit codes:
  0  converted and written (to OUT, or to stdout)
  1  converted and written, but --strict was given and some keys could not be mapped
  2  nothing written: SRC unreadable or not an OpenAvatarChat config, OUT exists (without --force) or is SRC,
     OUT not writable

See docs/migration.md for the full mapping."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="convert configs from other avatar stacks")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="{import}")
    command = actions.add_parser(
        "import",
        help="convert an OpenAvatarChat YAML config (e.g. chat_with_lam.yaml) into ours",
        description="Convert an OpenAvatarChat config (default: → chat_engine: / service:) into a Gaussian Avatar "
        "runtime config.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("source", metavar="SRC", help="the OpenAvatarChat YAML file, e.g. config/chat_with_lam.yaml")
    command.add_argument("-o", "--output", metavar="OUT", default="-", help="file to write; - (default): stdout")
    command.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    command.add_argument(
        "--oac-root",
        metavar="DIR",
        help="the OpenAvatarChat checkout SRC's relative paths (certificates, avatar .zip, reference audio) refer "
        "to; default: the directory above SRC's config/ directory, else SRC's directory",
    )
    command.add_argument("--strict", action="store_true", help="exit 1 (after writing) when a key was not mapped")


def run(args: argparse.Namespace) -> int:
    source = Path(args.source)
    try:
        text = source.read_text(encoding="utf-8")
        document = parse_source(text, str(source))
    except UnicodeDecodeError:
        return _fail(f"{source} is not UTF-8 text, so not an OpenAvatarChat YAML config")
    except OSError as exc:
        return _fail(f"cannot read {source}: {exc.strerror or exc}")
    except SourceError as exc:
        return _fail(str(exc))
    output = None if args.output in (None, "-") else Path(args.output)
    if output is not None and output.exists():
        if output.resolve() == source.resolve():
            return _fail(f"{output} is the source file; write the converted config elsewhere")
        if not args.force:
            return _fail(f"{output} exists; use --force to overwrite it")
    root = Path(args.oac_root) if args.oac_root else default_root(source)
    shown = str(output) if output else "<converted file>"
    try:
        conversion = convert(document, root=root.absolute(), output=shown)
        rendered = render_yaml(conversion, source=str(source.absolute()), today=dt.date.today(), check_hint=shown)
        _write_validated(rendered, output)
    except (ConfigError, ValueError) as exc:
        return _fail(f"the converted config does not load, nothing written (please report this): {exc}")
    except OSError as exc:
        return _fail(f"cannot write {output}: {exc.strerror or exc}")
    report = render_report(conversion, source=str(source), destination=str(output) if output else "stdout")
    print(report, end="", file=sys.stderr)
    return 1 if args.strict and conversion.not_mapped else 0


def default_root(source: Path) -> Path:
    """OpenAvatarChat keeps its configs in <checkout>/config/ and resolves relative paths against <checkout>."""
    folder = source.absolute().parent
    return folder.parent if folder.name == "config" else folder


def _write_validated(text: str, output: Path | None) -> None:
    """Validate `text` with load_config (environment ignored) before it reaches OUT or stdout."""
    if output is None:
        with tempfile.TemporaryDirectory() as folder:
            candidate = Path(folder) / "converted.yaml"
            candidate.write_text(text, encoding="utf-8")
            load_config(candidate, env={})
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    candidate = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with open(candidate, "x", encoding="utf-8") as handle:
            handle.write(text)
        load_config(candidate, env={})
        os.replace(candidate, output)
    finally:
        candidate.unlink(missing_ok=True)


def _fail(message: str) -> int:
    print(f"avatar-runtime config import: {message}", file=sys.stderr)
    return 2
