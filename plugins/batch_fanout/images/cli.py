"""``batch-fanout images build``: build (and push) the job images the job definitions name."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from batch_fanout.images.engine import ENGINES, ContainerEngine, EngineError

DEFAULT_REGISTRY = "local"
DEFAULT_TAG = "latest"


def _project_dir(args: argparse.Namespace) -> Path:
    return Path(args.project_dir or os.environ.get("BATCH_FANOUT_HOME") or Path.cwd()).resolve()


def run_build(args: argparse.Namespace) -> int:
    from batch_fanout.images.build import build_images, deployment_image, describe, job_images
    from batch_fanout.specs.errors import SpecError

    project = _project_dir(args)
    containers_dir = Path(
        args.containers_dir
        or os.environ.get("BATCH_FANOUT_CONTAINERS_DIR")
        or project / "include" / "containers"
    ).resolve()
    if args.specs_dir:
        specs_dir: Path | None = Path(args.specs_dir).resolve()
    elif not os.environ.get("BATCH_FANOUT_SPECS_DIR") and (project / "include" / "specs").is_dir():
        specs_dir = project / "include" / "specs"
    else:  # where the specs loader looks: $BATCH_FANOUT_SPECS_DIR, ..., the provider's own copy
        specs_dir = None
    registry = args.registry or os.environ.get("BATCH_FANOUT_IMAGE_REGISTRY") or DEFAULT_REGISTRY
    tag = args.tag or os.environ.get("BATCH_FANOUT_IMAGE_TAG") or DEFAULT_TAG
    try:
        engine = ContainerEngine.detect(args.engine)
        if not containers_dir.is_dir():
            raise EngineError(f"the containers directory {containers_dir} does not exist (--containers-dir)")
        targets = job_images(specs_dir, containers_dir, registry, tag)
        if args.only:
            wanted = set(args.only)
            unknown = wanted - {target.image.rsplit("/", 1)[-1].split(":")[0] for target in targets}
            if unknown:
                raise EngineError(
                    f"--only {', '.join(sorted(unknown))}: no job definition uses such an image"
                )
            targets = [
                target for target in targets if target.image.rsplit("/", 1)[-1].split(":")[0] in wanted
            ]
        if args.deployment:
            targets.append(
                deployment_image(project, job_images(specs_dir, containers_dir, registry, tag), registry, tag)
            )
        contexts = {}
        for item in args.build_context or []:
            name, separator, folder = item.partition("=")
            if not separator or not name or not folder:
                raise EngineError(f"--build-context {item!r}: expected NAME=PATH")
            contexts[name] = Path(folder).resolve()
        built = build_images(engine, targets, offline=args.offline_base, push=args.push, contexts=contexts)
    except (EngineError, SpecError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for image in built:
        print(describe(image))
    return 0


def add_parser(subparsers: Any) -> None:
    """Add ``images build`` to the ``batch-fanout`` command."""
    images = subparsers.add_parser("images", help="build the job images the job definitions use")
    commands = images.add_subparsers(dest="images_command", metavar="ACTION")
    build = commands.add_parser(
        "build",
        help="build every image a job definition names (and the deployment image), printing each and its size",
        description="Build <containers-dir>/<name>/Dockerfile (context: the containers directory) as "
        "<registry>/<namespace>/<name>:<tag> for every image the job definitions name. Base images "
        "that are neither present nor pullable are replaced by offline stand-ins built from Debian "
        "packages (always with --offline-base).",
    )
    build.add_argument("--engine", choices=ENGINES, help="container engine (default: podman, else docker)")
    build.add_argument(
        "--registry",
        help=f"registry of the images, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com "
        f"(default: $BATCH_FANOUT_IMAGE_REGISTRY, else {DEFAULT_REGISTRY})",
    )
    build.add_argument(
        "--tag", help=f"tag of the images (default: $BATCH_FANOUT_IMAGE_TAG, else {DEFAULT_TAG})"
    )
    build.add_argument(
        "--offline-base",
        action="store_true",
        help="build the base images from Debian packages (mmdebstrap) instead of pulling them",
    )
    build.add_argument(
        "--deployment", action="store_true", help="also build the project's Dockerfile (the Airflow image)"
    )
    build.add_argument("--push", action="store_true", help="push each image after building it")
    build.add_argument(
        "--build-context",
        action="append",
        metavar="NAME=PATH",
        help="a named build context a Dockerfile copies from (default: the installed Python package NAME)",
    )
    build.add_argument("--only", nargs="+", metavar="NAME", help="build only these images (by name)")
    build.add_argument(
        "--specs-dir",
        help="the specs folder (default: $BATCH_FANOUT_SPECS_DIR, else the project's include/specs)",
    )
    build.add_argument(
        "--containers-dir",
        help="folder of image folders (default: $BATCH_FANOUT_CONTAINERS_DIR, else include/containers)",
    )
    build.add_argument(
        "--project-dir", help="the project (default: $BATCH_FANOUT_HOME, else the current folder)"
    )
    build.set_defaults(func=run_build)
    images.set_defaults(func=lambda args: (images.print_help(sys.stderr), 2)[1])
