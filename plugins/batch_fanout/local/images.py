"""Where a job image's code lives: the one lookup order for the image folders, and the image map.

The folder of image folders is found, in this order:

1. ``--containers-dir`` of ``batch-fanout local start|serve`` (``containers_dir=`` in the test helper);
2. the environment variable ``BATCH_FANOUT_CONTAINERS_DIR`` of the endpoint;
3. ``containersDir`` in ``<data-dir>/settings.json`` (relative to the data directory).

With none of them, only images listed in ``<data-dir>/images.json`` run; any other image fails its job
with ``CannotPullContainerError`` naming this order. The endpoint never guesses a folder from where the
package is installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from batch_fanout.local import CONTAINERS_DIR_ENV

IMAGE_MAP_FILE = "images.json"
SETTINGS_FILE = "settings.json"
CONTAINERS_DIR_SETTING = "containersDir"


def containers_dir_for(data_dir: Path, flag: str | Path | None = None) -> Path | None:
    """The folder of image folders by the documented order (see the module), or ``None``.

    :param data_dir: the endpoint's data directory
    :param flag: the value of ``--containers-dir``, when given
    :raises ValueError: when ``settings.json`` exists but cannot be read, naming the file
    """
    if flag:
        return Path(flag).resolve()
    configured = os.environ.get(CONTAINERS_DIR_ENV)
    if configured:
        return Path(configured).resolve()
    settings_file = data_dir / SETTINGS_FILE
    try:
        text = settings_file.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ValueError(f"cannot read {settings_file}: {error}") from error
    try:
        settings = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{settings_file} is not valid JSON: {error}") from error
    if not isinstance(settings, dict):
        raise ValueError(f"{settings_file} must hold a JSON object")
    value = settings.get(CONTAINERS_DIR_SETTING)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{settings_file}: {CONTAINERS_DIR_SETTING} must be a folder path")
    folder = Path(value)
    return (folder if folder.is_absolute() else data_dir / folder).resolve()


class ImageResolver:
    """Maps an image to the folder that holds its code.

    ``<registry>/<namespace>/<name>:<tag>`` resolves to ``<containers_dir>/<name>/``; any image can also
    be mapped explicitly in ``<data_dir>/images.json`` (``{"image": "folder"}``, relative folders are
    relative to the data directory), which takes precedence and is read again when it changes.

    :param containers_dir: the folder of image folders, ``None`` when none is configured
    :param data_dir: the endpoint's data directory
    """

    def __init__(self, containers_dir: Path | None, data_dir: Path) -> None:
        self.containers_dir = containers_dir
        self.map_file = data_dir / IMAGE_MAP_FILE
        self._map: dict[str, str] = {}
        self._map_stamp: tuple[int, int] | None = None

    def _image_map(self) -> dict[str, str]:
        try:
            stat = self.map_file.stat()
        except FileNotFoundError:
            self._map, self._map_stamp = {}, None
            return self._map
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._map_stamp:
            loaded = json.loads(self.map_file.read_text())
            if not isinstance(loaded, dict):
                raise ValueError(f"{self.map_file} must hold a JSON object of image -> folder")
            self._map = {str(key): str(value) for key, value in loaded.items()}
            self._map_stamp = stamp
        return self._map

    def resolve(self, image: str) -> Path:
        """The folder of ``image``; ``LookupError`` naming the image when there is none."""
        try:
            mapped = self._image_map().get(image)
        except (OSError, ValueError) as error:
            raise LookupError(f"cannot read the image map {self.map_file}: {error}") from error
        if mapped is not None:
            folder = Path(mapped)
            if not folder.is_absolute():
                folder = self.map_file.parent / folder
            if folder.is_dir():
                return folder
            raise LookupError(f"image {image} is mapped to {folder}, which is not a folder")
        if self.containers_dir is None:
            raise LookupError(
                f"image {image} has no local folder: it is not in {self.map_file}, and no folder of image "
                f"folders is configured (--containers-dir, ${CONTAINERS_DIR_ENV}, or {CONTAINERS_DIR_SETTING} "
                f"in {self.map_file.parent / SETTINGS_FILE})"
            )
        name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
        folder = self.containers_dir / name
        if name and name not in (".", "..") and folder.is_dir():
            return folder
        raise LookupError(
            f"image {image} has no local folder: neither {folder} nor an entry in {self.map_file}"
        )
