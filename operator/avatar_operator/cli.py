"""`avatar-operator run`: the operator's process (the chart's Deployment runs this).

    avatar-operator run [--namespace NS ... | --all-namespaces] [--peering NAME] [--liveness URL]
                        [--log-format json|full|plain] [--verbose]

Environment: AVATAR_POD_CIDRS (comma-separated pod network CIDRs coturn may relay to),
AVATAR_PROMETHEUS_SERVER_ADDRESS (the http(s) URL of the Prometheus that KEDA ScaledObjects query; default
http://prometheus-operated.monitoring.svc:9090); both are checked at start. In a pod the service account is used,
elsewhere $KUBECONFIG.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import kopf

from .handlers import OperatorConfig, register

LOG_FORMATS = {"json": kopf.LogFormat.JSON, "full": kopf.LogFormat.FULL, "plain": kopf.LogFormat.PLAIN}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar-operator", description="Gaussian Avatar Kubernetes operator")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="reconcile AvatarDeployments and AvatarModelCaches until stopped")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], metavar="NS",
        help="watch this namespace (repeatable; a glob such as 'team-*' works); default: all namespaces",
    )  # fmt: skip
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    run.add_argument(
        "--peering", metavar="NAME",
        help="elect one active replica through the KopfPeering object NAME (CRD required); default: standalone",
    )  # fmt: skip
    run.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--log-format", choices=sorted(LOG_FORMATS), default="json", help="json: one object per line")
    run.add_argument("--resync-interval", type=float, default=30.0, metavar="S", help="re-read children every S s")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def run(args: argparse.Namespace) -> None:
    try:
        config = OperatorConfig.from_env(peering=args.peering, resync_interval_s=args.resync_interval)
    except ValueError as exc:
        raise SystemExit(f"avatar-operator: {exc}") from None
    kopf.configure(verbose=args.verbose, log_format=LOG_FORMATS[args.log_format], log_refkey="object")
    registry = kopf.OperatorRegistry()
    register(registry, config)
    kopf.run(
        registry=registry,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
