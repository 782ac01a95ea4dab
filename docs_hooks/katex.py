"""MkDocs hook: the docs site's math rendered by KaTeX, offline, from the npm registry at build time.

``pymdownx.arithmatex`` (generic mode) leaves each formula as ``\\( … \\)`` or ``\\[ … \\]`` in a
``.arithmatex`` element; ``docs/javascripts/katex.js`` renders those with KaTeX when a page loads.
KaTeX itself is not committed: the first build fetches the pinned release with ``npm pack``
(npm's ordinary client), checks it against the pinned SHA-512, unpacks the browser files into
``.cache/katex-<version>/`` (git-ignored) and every build copies them into the site's
``assets/katex/``. The site then loads nothing from another host.

Run as a script (``python docs_hooks/katex.py``) it only fetches, e.g. in CI before the build.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

VERSION = "0.19.1"
INTEGRITY = "sha512-jG8uKntjSEcm2EpQOh0XturpPuuC9r3Sq5HLHdsFdWZT27E672SF19QEi+of0/YeOy15lDgRhKvr5614uRrEfA=="
CACHE = Path(__file__).resolve().parents[1] / ".cache" / f"katex-{VERSION}"
SITE_FOLDER = "assets/katex"  # where the pages' extra_css / extra_javascript (mkdocs.yml) look
WANTED = ("package/dist/katex.min.js", "package/dist/katex.min.css", "package/LICENSE")
FONTS = "package/dist/fonts/"


class KatexError(RuntimeError):
    """KaTeX could not be fetched or unpacked (the message says what to do)."""


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _unpack(tgz: Path, into: Path) -> None:
    """The browser files of the package (no scripts run, no path outside ``into``)."""
    (into / "fonts").mkdir(parents=True)
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            name = member.name
            if not member.isfile():
                continue
            if name in WANTED:
                target = into / Path(name).name
            elif name.startswith(FONTS) and "/" not in name[len(FONTS) :]:
                target = into / "fonts" / name[len(FONTS) :]
            else:
                continue
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    missing = [n for n in ("katex.min.js", "katex.min.css", "LICENSE") if not (into / n).is_file()]
    if missing or not any((into / "fonts").glob("*.woff2")):
        raise KatexError(f"{tgz.name}: the package lacks {missing or 'its fonts'}")


def fetch(cache: Path = CACHE) -> Path:
    """The folder holding KaTeX's browser files, fetched with ``npm pack`` if not there yet."""
    if (cache / "katex.min.js").is_file():
        return cache
    npm = shutil.which("npm")
    if npm is None:
        raise KatexError(
            "the docs' math needs KaTeX, fetched with npm at build time, and npm is not on PATH "
            "(Debian/Ubuntu: `sudo apt-get install npm`)"
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent, prefix=".katex-") as tmp:
        run = subprocess.run(
            [npm, "pack", f"katex@{VERSION}", "--pack-destination", tmp, "--silent", "--ignore-scripts"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        tgz = Path(tmp) / f"katex-{VERSION}.tgz"
        if run.returncode != 0 or not tgz.is_file():
            raise KatexError(f"`npm pack katex@{VERSION}` failed (exit {run.returncode}): {run.stderr.strip()[-400:]}")
        got = _integrity(tgz)
        if got != INTEGRITY:
            raise KatexError(f"katex-{VERSION}.tgz: {got} is not the pinned {INTEGRITY}; not used")
        unpacked = Path(tmp) / "katex"
        _unpack(tgz, unpacked)
        try:
            os.replace(unpacked, cache)  # whole or not at all; a build running alongside may win
        except OSError:
            if not (cache / "katex.min.js").is_file():
                raise
    return cache


def on_config(config: Any) -> Any:
    """Fetch before the pages are built, so a missing KaTeX fails the build instead of leaving raw LaTeX."""
    try:
        fetch()
    except (KatexError, OSError, subprocess.SubprocessError) as exc:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"KaTeX for the docs' math: {exc}") from exc
    return config


def on_post_build(config: Any) -> None:
    """Copy KaTeX into the built site, beside the pages that load it."""
    target = Path(config["site_dir"]) / SITE_FOLDER
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(fetch(), target)


if __name__ == "__main__":
    try:
        print(f"KaTeX {VERSION} in {fetch()}")
    except KatexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
