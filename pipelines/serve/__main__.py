"""`python -m pipelines.serve`: deploy the registry's local models as Ray Serve applications on a running cluster.

    python -m pipelines.serve --address auto                      # every local model, one application per serve group
    python -m pipelines.serve --address auto --models sdxl-base   # only the groups serving these models
    python -m pipelines.serve --list                              # what would be deployed, without a cluster
    python -m pipelines.serve --address auto --delete             # remove them

It deploys and exits once the replicas run (Serve keeps the applications on the cluster), or stays with --stay. The
app instances then run with PLAYGROUND_BACKEND=ray, the same address and the same namespace."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from ..errors import RequestRefused
from ..registry import DEFAULT_REGISTRY, load_registry
from ..runtime import RuntimeSettings
from .wire import DEFAULT_NAMESPACE, application_name


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "")
    return None if value == "" else value.strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m pipelines.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--address", default=env("PLAYGROUND_RAY_ADDRESS") or "auto",
                        help="the Ray cluster (default: PLAYGROUND_RAY_ADDRESS, else auto: the cluster of this node)")
    parser.add_argument("--namespace", default=env("PLAYGROUND_RAY_NAMESPACE") or DEFAULT_NAMESPACE,
                        help="Ray namespace and application-name prefix; the app instances must use the same")
    parser.add_argument("--models", default="", help="comma-separated registry ids (default: every local model)")
    parser.add_argument("--registry", default=str(DEFAULT_REGISTRY), help="the registry file (default: presets/models.toml)")
    parser.add_argument("--preview", choices=("auto", "force", "forbid"), default=env("PLAYGROUND_PREVIEW") or "auto",
                        help="the replicas' tiny offline preview: auto (when weights are missing), force, forbid")
    parser.add_argument("--tiny-dir", default=env("PLAYGROUND_TINY_DIR") or str(Path(tempfile.gettempdir()) / "playground-tiny-models"),
                        help="where replicas build tiny preview models (on their own node)")
    parser.add_argument("--device", default=env("PLAYGROUND_DEVICE"), help="the replicas' torch device (default: cuda if any)")
    parser.add_argument("--dtype", default=env("PLAYGROUND_DTYPE"), help="the replicas' torch dtype (default: bfloat16 on cuda)")
    parser.add_argument("--cache-gb", type=float, default=float(env("PLAYGROUND_CACHE_GB") or 0) or None,
                        help="a replica's pipeline cache budget in GiB (default: unlimited)")
    for name, kind in (("num-gpus", float), ("num-cpus", float), ("min-replicas", int), ("max-replicas", int),
                       ("max-models-per-replica", int)):
        parser.add_argument(f"--{name}", type=kind, default=None,
                            help=f"override every deployment's {name.replace('-', '_')} (registry serve tables otherwise)")
    parser.add_argument("--wait-s", type=float, default=600.0, help="how long to wait for the replicas to run (default 600)")
    parser.add_argument("--stay", action="store_true", help="keep this process until Ctrl-C (e.g. a container's main process)")
    parser.add_argument("--list", action="store_true", help="print the applications and their options; deploy nothing")
    parser.add_argument("--delete", action="store_true", help="delete the applications of these models")
    return parser.parse_args(argv)


def runtime_settings(args: argparse.Namespace) -> RuntimeSettings:
    return RuntimeSettings(
        tiny_root=Path(args.tiny_dir), preview=args.preview, allow_downloads=_env_flag("PLAYGROUND_ALLOW_DOWNLOADS"),
        device=args.device, dtype=args.dtype, cache_budget_bytes=int(args.cache_gb * 2**30) if args.cache_gb else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (RequestRefused, ValueError) as exc:  # a registry entry, a model id, an override: say which, no traceback
        raise SystemExit(f"Cannot deploy: {exc}") from None


def run(args: argparse.Namespace) -> int:
    registry = load_registry(args.registry)
    models = [m.strip() for m in args.models.split(",") if m.strip()] or None
    import ray
    from ray import serve

    from . import app

    overrides = {key: value for key in app.OVERRIDABLE if (value := getattr(args, key)) is not None}
    chosen = app.groups(registry, models)
    if args.list:
        for group in chosen:
            options = group.options.model_validate({**group.options.model_dump(), **overrides})
            print(json.dumps({"application": application_name(args.namespace, group.name), "models": group.ids,
                              "max_models_per_replica": options.max_models_per_replica, **app.deployment_options(options)}))
        return 0
    ray.init(address=args.address, namespace=args.namespace, logging_level=logging.WARNING)
    if args.delete:
        for group in chosen:
            serve.delete(application_name(args.namespace, group.name))
            print(f"deleted {application_name(args.namespace, group.name)}")
        return 0
    names = app.deploy(registry, runtime_settings(args), args.namespace, models, overrides)
    states = app.wait_until_running(names, args.wait_s)
    for name, state in states.items():
        print(f"{name}: {state.rsplit('.', 1)[-1]}")
    if not all(state.endswith("RUNNING") for state in states.values()):
        print(f"not all applications run after {args.wait_s:g} s (a replica may be waiting for a GPU the cluster lacks: "
              "see `serve status`)", file=sys.stderr)
        return 1
    if args.stay:
        from ray.serve._private.utils import wait_for_interrupt  # what serve.run(blocking=True) waits with

        wait_for_interrupt()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
