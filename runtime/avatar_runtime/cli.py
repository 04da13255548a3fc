"""`avatar-runtime`: the command line of the runtime (DESIGN §2b)."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError, load_config
from .doctor import add_parser as add_doctor_parser
from .doctor import run as run_doctor
from .migrate.command import add_parser as add_config_parser
from .migrate.command import run as run_config_command
from .models.commands import add_parser as add_models_parser
from .models.commands import run as run_models_command

# Never printed by check-config (they may come from the environment, i.e. from Kubernetes Secrets).
SECRET_FIELDS = {
    "server": {"auth_token", "session_token_secret"},
    "llm": {"api_key"},
    "hub": {"token"},
    "tts": {"cosyvoice": {"api_key"}},
    "turn": {"static_auth_secret", "credential"},
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar-runtime", description="Gaussian Avatar runtime")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the web client, the API and WebRTC sessions")
    serve.add_argument("--config", help="YAML config file (see runtime/avatar_runtime/default_config.yaml)")
    serve.add_argument("--host", help="bind address (default from config: 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default from config: 8282)")
    serve.add_argument("--no-tls", action="store_true", help="plain HTTP (loopback and tests; behind a TLS proxy)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    check = commands.add_parser("check-config", help="validate a config file and print the merged result")
    check.add_argument("--config", required=True)
    token = commands.add_parser(
        "token", help="mint a one-use session token with server.session_token_secret (docs/security.md)"
    )
    token.add_argument("--config", help="YAML config file; the secret may also come from AVATAR_SESSION_TOKEN_SECRET")
    token.add_argument("--ttl", type=float, default=60.0, help="seconds the token stays valid (default 60)")
    add_models_parser(commands)
    add_doctor_parser(commands)
    add_config_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":  # converts a foreign file; our own config (and environment) is not involved
        return run_config_command(args)
    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"avatar-runtime: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(config.model_dump_json(indent=2, exclude=SECRET_FIELDS))
        from .languages import languages_of

        if (problem := languages_of(config).problem()) is not None:
            print(f"avatar-runtime: warning: {problem}", file=sys.stderr)
        return 0
    if args.command == "models":
        return run_models_command(args, config)
    if args.command == "doctor":
        return run_doctor(args, config)
    if args.command == "token":
        return _mint_token(config, args.ttl)
    return _serve(config, args)


def _mint_token(config, ttl_s: float) -> int:
    from .access import mint_session_token

    secret, limit = config.server.session_token_secret, config.server.session_token_max_ttl_s
    if not secret:
        print(
            "avatar-runtime: no server.session_token_secret (or AVATAR_SESSION_TOKEN_SECRET) to sign with",
            file=sys.stderr,
        )
        return 2
    if not 0 < ttl_s <= limit:
        print(f"avatar-runtime: --ttl must be in (0, {limit:g}] (server.session_token_max_ttl_s)", file=sys.stderr)
        return 2
    print(mint_session_token(secret, ttl_s))
    return 0


def _serve(config, args) -> int:
    import uvicorn

    from .app import create_app
    from .lifecycle import DrainingServer
    from .tls import ensure_certificate

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = args.host or config.server.host
    port = args.port or config.server.port
    tls_kwargs = {}
    if config.tls.enabled and not args.no_tls:
        try:
            cert, key = ensure_certificate(config.tls)
        except (OSError, ValueError) as exc:
            print(f"avatar-runtime: TLS: {exc}", file=sys.stderr)
            return 2
        tls_kwargs = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    scheme = "https" if tls_kwargs else "http"
    shown_host = "localhost" if host in ("0.0.0.0", "::") else host
    logging.getLogger("avatar_runtime").info("serving on %s://%s:%d", scheme, shown_host, port)
    app = create_app(config)
    server_config = uvicorn.Config(app, host=host, port=port, log_level=args.log_level, **tls_kwargs)
    # SIGTERM / Ctrl-C drain the live sessions (up to server.drain_timeout_s) before the server stops.
    server = DrainingServer(server_config, app.state.runtime, config.server.drain_timeout_s)
    server.run()
    return 0 if server.started else 3  # 3: uvicorn's own code for "could not start" (e.g. the port is taken)


if __name__ == "__main__":
    sys.exit(main())
