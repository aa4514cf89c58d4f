"""Build the job images with the names and tags the job definitions use.

Every job definition of a specs directory names its image ``<registry>/<namespace>/<name>:<tag>``;
the image is built from ``<containers dir>/<name>/Dockerfile`` with the containers directory as the
build context (so every image can copy the shared code beside it). The deployment image (the
project's own ``Dockerfile``, context the project) is ``<registry>/<namespace>/airflow:<tag>``, in the
namespace the job images share. Nothing here knows a project's job names.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from batch_fanout.images.engine import ContainerEngine, EngineError, human_size, last_line
from batch_fanout.images.offline import STANDIN_LABEL, build_standin, standin_for, standin_name

BUILD_TIMEOUT_SECONDS = 1800
PULL_TIMEOUT_SECONDS = 300
DEPLOYMENT_IMAGE_NAME = "airflow"


@dataclass(frozen=True)
class ImageTarget:
    """One image to build.

    :param image: its full name, as the job definitions (or the deployment) use it
    :param dockerfile: its Dockerfile
    :param context: its build context
    :param used_by: the job definitions that run it (empty for the deployment image)
    """

    image: str
    dockerfile: Path
    context: Path
    used_by: tuple[str, ...] = ()


@dataclass
class BuiltImage:
    image: str
    size: int
    bases: dict[str, str] = field(default_factory=dict)  # base -> what was built FROM instead


def image_name(image: str) -> str:
    """``name`` of ``<registry>/<namespace>/<name>:<tag>`` (a digest or tag is dropped)."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def image_repository(image: str) -> str:
    """``<registry>/<namespace>/<name>`` of an image (no tag, no digest)."""
    without_digest = image.split("@", 1)[0]
    head, _, last = without_digest.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def job_images(specs_dir: Path | None, containers_dir: Path, registry: str, tag: str) -> list[ImageTarget]:
    """The images the job definitions of ``specs_dir`` use, each with its image folder.

    :raises EngineError: when an image has no folder or no Dockerfile, naming the job definition
    """
    from batch_fanout.specs.loader import load_specs
    from batch_fanout.specs.render import SpecSettings, render_job_definitions

    settings = SpecSettings(
        image_registry=registry, image_tag=tag, sources={"image_registry": "--registry", "image_tag": "--tag"}
    )
    definitions = render_job_definitions(load_specs(specs_dir), settings)
    users: dict[str, list[str]] = {}
    for definition in definitions:
        image = (definition.request.get("containerProperties") or {}).get("image")
        if image:
            users.setdefault(str(image), []).append(definition.name)
    targets = []
    problems = []
    for image, names in sorted(users.items()):
        folder = containers_dir / image_name(image)
        dockerfile = folder / "Dockerfile"
        if not dockerfile.is_file():
            problems.append(f"image {image} of job definition {', '.join(names)} has no {dockerfile}")
            continue
        targets.append(
            ImageTarget(image=image, dockerfile=dockerfile, context=containers_dir, used_by=tuple(names))
        )
    if problems:
        raise EngineError("; ".join(problems))
    return targets


def deployment_image(project_dir: Path, jobs: Iterable[ImageTarget], registry: str, tag: str) -> ImageTarget:
    """The project's own ``Dockerfile``, named in the namespace the job images share."""
    dockerfile = project_dir / "Dockerfile"
    if not dockerfile.is_file():
        raise EngineError(f"--deployment builds {dockerfile}, which does not exist")
    namespaces = {image_repository(job.image).rsplit("/", 1)[0] for job in jobs}
    namespace = namespaces.pop() if len(namespaces) == 1 else registry
    return ImageTarget(
        image=f"{namespace}/{DEPLOYMENT_IMAGE_NAME}:{tag}", dockerfile=dockerfile, context=project_dir
    )


_ARG = re.compile(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", re.IGNORECASE)
_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)


def base_images(dockerfile: Path) -> list[str]:
    """The images a Dockerfile builds ``FROM`` (not its own earlier stages, not ``scratch``), with
    ``ARG`` defaults given before the first ``FROM`` substituted."""
    arguments: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    seen_from = False
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        argument = _ARG.match(line)
        if argument and not seen_from:
            arguments[argument.group(1)] = (argument.group(2) or "").strip().strip('"')
            continue
        match = _FROM.match(line)
        if not match:
            continue
        seen_from = True
        image = re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: arguments.get(m.group(1), ""), match.group(1)
        )
        if image.lower() != "scratch" and image not in stages and image not in bases:
            bases.append(image)
        if match.group(2):
            stages.add(match.group(2))
    return bases


def qualified(image: str) -> str:
    """``image`` with Docker Hub's registry where it names none (``python:3`` is
    ``docker.io/library/python:3``), as docker reads it: podman refuses short names it has no alias for."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if rest else f"docker.io/library/{image}"


def resolve_base(
    engine: ContainerEngine, base: str, offline: bool, say: Callable[[str], None] = print
) -> str:
    """What to build ``FROM`` in place of ``base``: itself when present or pullable, else (or when
    ``offline``) its offline stand-in."""
    if not offline:
        if engine.image_exists(base):
            # podman resolves a short name to any local image of that name, a stand-in included:
            # say so rather than pass it off as the real base.
            labels = engine.call(
                ["image", "inspect", "--format", "{{json .Labels}}", base], check=False
            ).stdout
            if STANDIN_LABEL in labels:
                return standin_name(base)
            return base
        pulled = engine.call(["pull", qualified(base)], timeout=PULL_TIMEOUT_SECONDS, check=False)
        if pulled.returncode == 0:
            return base
        say(f"cannot pull {base} ({last_line(pulled.stderr)}): building an offline stand-in")
    return build_standin(engine, standin_for(base), say)


_COPY_FROM = re.compile(r"^(?:COPY|ADD)\s+(?:--\S+\s+)*--from=([A-Za-z0-9_.-]+)\b", re.IGNORECASE)


def named_contexts(dockerfile: Path, given: dict[str, Path] | None = None) -> dict[str, Path]:
    """The named build contexts ``dockerfile`` copies from (``COPY --from=NAME``, NAME not a stage):
    ``given`` ones, else the folder of the installed Python package NAME (the provider's job contract).

    :raises EngineError: naming a context that is neither given nor an installed package
    """
    import importlib.util

    stages = {
        match.group(1)
        for line in dockerfile.read_text().splitlines()
        if (match := re.match(r"^FROM\s+\S+\s+AS\s+(\S+)", line.strip(), re.IGNORECASE))
    }
    contexts: dict[str, Path] = {}
    for line in dockerfile.read_text().splitlines():
        match = _COPY_FROM.match(line.strip())
        if not match or match.group(1) in stages or match.group(1) in contexts:
            continue
        name = match.group(1)
        if given and name in given:
            contexts[name] = given[name]
            continue
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise EngineError(
                f"{dockerfile} copies from the build context {name!r}: give it with --build-context {name}=PATH"
            )
        contexts[name] = Path(next(iter(spec.submodule_search_locations)))
    return contexts


def build_command(
    engine: ContainerEngine,
    target: ImageTarget,
    replacements: dict[str, str],
    contexts: dict[str, Path] | None = None,
) -> list[str]:
    """``<engine> build`` of ``target``, building FROM the replacement of each replaced base, with
    its named build contexts."""
    args = ["build", *engine.limit_args, "-f", str(target.dockerfile), "-t", target.image]
    for name, folder in (contexts or {}).items():
        args += ["--build-context", f"{name}={folder}"]
    for base, replacement in replacements.items():
        if replacement == base:
            continue
        if engine.name == "podman":
            args += ["--from", replacement]  # replaces the FROM image of a one-stage Dockerfile
        else:
            args += ["--build-context", f"{base}=docker-image://{replacement}"]
    args.append(str(target.context))
    return engine.command(*args)


def build_images(
    engine: ContainerEngine,
    targets: list[ImageTarget],
    *,
    offline: bool = False,
    push: bool = False,
    contexts: dict[str, Path] | None = None,
    say: Callable[[str], None] = print,
) -> list[BuiltImage]:
    """Build every target (bases first: pulled, or stand-ins when offline), then push when asked.

    :raises EngineError: naming the image whose build failed, with the end of the engine's output
    """
    resolved: dict[str, str] = {}
    built = []
    for target in targets:
        bases = base_images(target.dockerfile)
        replacements = {}
        for base in bases:
            if base not in resolved:
                resolved[base] = resolve_base(engine, base, offline, say)
            replacements[base] = resolved[base]
        replaced = [base for base in bases if replacements[base] != base]
        if engine.name == "podman" and replaced and len(bases) > 1:
            raise EngineError(
                f"{target.dockerfile} has {len(bases)} base images; podman replaces only a one-stage "
                f"Dockerfile's base with an offline stand-in (needed for {', '.join(replaced)})"
            )
        command = build_command(engine, target, replacements, named_contexts(target.dockerfile, contexts))
        where = (
            target.dockerfile.relative_to(target.context)
            if target.dockerfile.is_relative_to(target.context)
            else target.dockerfile
        )
        say(f"building {target.image} from {where} (context {target.context})")
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as error:
            raise EngineError(
                f"building {target.image} did not finish in {BUILD_TIMEOUT_SECONDS} s"
            ) from error
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise EngineError(f"building {target.image} ({shlex.join(command)}) failed:\n{tail}")
        if push:
            engine.call(["push", target.image], timeout=BUILD_TIMEOUT_SECONDS)
        built.append(BuiltImage(target.image, engine.image_size(target.image), dict(replacements)))
    return built


def describe(built: BuiltImage) -> str:
    replaced = [f"{base} -> {standin}" for base, standin in built.bases.items() if standin != base]
    suffix = f"  (built FROM {', '.join(replaced)})" if replaced else ""
    return f"{built.image}  {human_size(built.size)}{suffix}"
