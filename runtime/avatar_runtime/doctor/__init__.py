"""`avatar-runtime doctor`: checks what a deployment needs and prints each problem with its fix.

One module per group of checks (packages, embedded, gpu, model_cache, web, certificate, network, turn, services),
each returning `Result`s (ok / info / warn / fail / skip, a one-line finding, a fix); `checks.run_checks` runs
them in order and `printer` renders the report. Exit code: 0 without failures (warnings do not fail), 1 with any,
2 for a bad config (reported by the CLI before any check, as `serve` reports it). This module stays light: the
checks are imported only when the command runs, so other subcommands do not pay for them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .target import DEFAULT_NETWORK_TIMEOUT_S


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `doctor` subcommand of `avatar-runtime`."""
    doctor = commands.add_parser(
        "doctor", help="check GPU, models, certificate, ports, TURN, LLM...; print each problem with its fix"
    )
    doctor.add_argument("--config", help="YAML config file, as given to serve")
    doctor.add_argument("--host", help="bind address, as given to serve (default from config: 0.0.0.0)")
    doctor.add_argument("--port", type=int, help="port, as given to serve (default from config: 8282)")
    doctor.add_argument("--no-tls", action="store_true", help="check plain HTTP, as `serve --no-tls` serves")
    doctor.add_argument(
        "--public-host", action="append", default=[], metavar="NAME",
        help="a host name or address people open in the browser (repeatable; default: the bind host or localhost)",
    )  # fmt: skip
    doctor.add_argument("--json", action="store_true", help="one JSON document on stdout instead of the report")
    doctor.add_argument("--skip-network", action="store_true", help="skip the TURN, LLM and online-voice checks")
    doctor.add_argument(
        "--timeout", type=float, default=DEFAULT_NETWORK_TIMEOUT_S, metavar="SECONDS",
        help=f"per network check (default {DEFAULT_NETWORK_TIMEOUT_S:g})",
    )  # fmt: skip


def run(args: argparse.Namespace, config) -> int:
    """Run `avatar-runtime doctor` with a loaded RuntimeConfig; returns the exit code."""
    from .checks import run_checks
    from .printer import render_json, render_text, use_colour
    from .result import exit_code
    from .target import make_target

    # Findings carry what the engines would log; their own warnings would only repeat them out of order.
    logging.basicConfig(level=logging.ERROR, format="avatar-runtime doctor: %(name)s: %(message)s")
    target = make_target(
        config, config_path=args.config, host=args.host, port=args.port, no_tls=args.no_tls,
        public_hosts=args.public_host, skip_network=args.skip_network, network_timeout_s=args.timeout,
    )  # fmt: skip
    results = run_checks(target)
    if args.json:
        sys.stdout.write(render_json(results, target))
    else:
        sys.stdout.write(render_text(results, target, colour=use_colour(sys.stdout)))
    return exit_code(results)
