"""The CSS and JavaScript that Great Expectations' Data Docs load from public CDNs, served locally.

GX 1.x writes each Data Docs page with <link>/<script> tags pointing at CDNs; offline the
validation tables never render. Each CDN URL below names an npm package at the exact version
the CDN URL resolves to, and the file inside it. `make setup` (`python -m ops.services fetch`)
unpacks those packages with `npm pack` into .cache/web-assets/<name>@<version>/, and the
reports site (ops/reports_site.py) rewrites the URLs in every Data Docs page to /vendor/….
Found by listing every http(s) src/href of a Data Docs site built by jobs.ingest.validate with
great-expectations==1.24.1; a GX upgrade that adds a URL shows up in
tests/integration/test_reports_site.py, where any request leaving 127.0.0.1 fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from contracts import settings

VENDOR_PREFIX = "/vendor/"
# CDN prefix -> (npm package@version, the folder inside the package the rest of the URL is
# relative to). A prefix may be one whole file (then the folder is that file). jsDelivr's "@5"
# and "@6" float within a major version: we pin the newest of that major when this table was
# written, and the file jsDelivr serves for it (the package's own `jsdelivr` entry point).
CDN_PREFIXES: dict[str, tuple[str, str]] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery@3.7.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/": ("popper.js@1.12.9", "dist/"),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/": ("bootstrap@4.3.1", "dist/"),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/": ("bootstrap@4.3.1", "dist/"),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/": (
        "@forevolve/bootstrap-dark@1.1.0",
        "",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/": (
        "bootstrap-datepicker@1.9.0",
        "dist/",
    ),
    # all.min.css loads ../webfonts/*: the package keeps that layout.
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/": (
        "@fortawesome/fontawesome-free@6.6.0",
        "",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/": ("bootstrap-table@1.19.1", ""),
    # GX pins the filter-control stylesheet one patch release behind the script.
    "https://unpkg.com/bootstrap-table@1.19.0/": ("bootstrap-table@1.19.0", ""),
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega@5.33.1", "build/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite@5.23.0", "build/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed@6.29.0", "build/vega-embed.min.js"),
}
# GX's logo on S3 (an <img> with a tracking query, and a dark-mode CSS background): the site
# ships the same logo in its own static/images.
GX_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/[\w.-]+\.png[^\"')]*"
)


def assets_dir() -> Path:
    """Where the npm packages are unpacked, one folder per package@version."""
    return settings.load().cache_dir / "web-assets"


def packages() -> list[str]:
    """Every npm package@version the Data Docs need, each once."""
    return sorted({spec for spec, _ in CDN_PREFIXES.values()})


def local_url(cdn_url: str) -> str | None:
    """The reports site's path of a file under one of the CDN prefixes (None: not ours)."""
    for prefix, (spec, inside) in CDN_PREFIXES.items():
        if not cdn_url.startswith(prefix):
            continue
        rest = cdn_url[len(prefix) :]
        if inside == "" or inside.endswith("/"):
            return f"{VENDOR_PREFIX}{spec}/{inside}{rest}"
        if rest == "":  # a whole-file prefix matches only itself
            return f"{VENDOR_PREFIX}{spec}/{inside}"
    return None


# A known prefix and the rest of the URL up to its closing quote. Longest prefix first, so
# ".../vega-lite@5" is never read as ".../vega@5"-something.
_CDN_PATTERN = re.compile(
    "(?:"
    + "|".join(re.escape(p) for p in sorted(CDN_PREFIXES, key=len, reverse=True))
    + r")[^\"'\s]*(?=[\"'])"
)


def rewrite(page: str, logo_url: str) -> str:
    """A Data Docs page with every known CDN reference pointing at the local copies."""
    page = _CDN_PATTERN.sub(lambda m: local_url(m.group(0)) or m.group(0), page)
    return GX_LOGO.sub(logo_url, page)


def vendor_root(spec_and_path: str) -> tuple[Path, str] | None:
    """(package folder, path inside it) for /vendor/<spec>/<path>; None when not one of ours."""
    for spec in packages():
        if spec_and_path.startswith(spec + "/"):
            return _package_dir(spec), spec_and_path[len(spec) + 1 :]
    return None


def _package_dir(spec: str) -> Path:
    return assets_dir() / spec.replace("/", "+")


def missing() -> list[str]:
    """Packages not unpacked yet."""
    return [spec for spec in packages() if not _package_dir(spec).is_dir()]


def fetch() -> Path:
    """Unpack every package with `npm pack` (the npm registry, integrity checked by npm) into
    .cache/web-assets; packages already there are kept."""
    for spec in missing():
        _unpack(spec)
    return assets_dir()


def _unpack(spec: str) -> None:
    """Download one package tarball and unpack its `package/` folder, renamed into place."""
    target = _package_dir(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        done = subprocess.run(  # noqa: S603 - npm with a package spec from the table above
            ["npm", "pack", spec, "--json", "--pack-destination", tmp],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
        )
        tarball = Path(tmp) / json.loads(done.stdout)[0]["filename"]
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        shutil.move(str(Path(tmp) / "package"), target)


if __name__ == "__main__":
    print(fetch())
