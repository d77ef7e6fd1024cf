#!/usr/bin/env python3
"""Print the path of a Go that can build Archipelago's artifacts, fetching one into the cache if needed.

A `go` on PATH is used when it is at least GO_MINIMUM. Otherwise the pinned Go (GO_PINNED) is taken from
$ARCHIPELAGO_CACHE/go/toolchain/go<version>.<os>-<arch>/, and fetched there first if it is not there yet: the
`golang.org/toolchain` module from the Go module proxy, which holds a complete Go tree. No Go is needed for that;
the module zip's `h1:` hash (the go.sum hash) is computed here and compared with the one pinned below before
anything is made visible. Nothing is written outside the cache.

Usage: scripts/go-toolchain.py            # prints e.g. /var/cache/archipelago/go/toolchain/go1.26.8.linux-amd64/bin/go
Progress goes to stderr; a failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

# The Go the artifacts are built and measured with (scripts/artifacts/README.md, "Build times").
GO_PINNED = "1.26.8"
# The hashes of the golang.org/toolchain module zips, as the Go checksum database lists them. Looked up through
# https://proxy.golang.org/sumdb/sum.golang.org/lookup/golang.org/toolchain@v0.0.1-go1.26.8.linux-<arch>
GO_PINNED_H1 = {
    "linux-amd64": "h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM=",
    "linux-arm64": "h1:sYL/O6MqS68ML0kjsQ36WoYIpJqkw60TxizWUYUKQMc=",
}
# The oldest Go that builds the artifacts with GOTOOLCHAIN=local: the highest `go` line in the module graphs of what
# scripts/build-artifacts.sh builds (k8s.io/kubernetes v1.33.13 and its staging modules say `go 1.24.0`, etcd
# server v3.5.24 `go 1.24`). Checked 2026-11-30: Go 1.24.0 runs `go list -m all` on the Kubernetes and etcd wrapper
# modules and on the go.mod of CoreDNS v1.12.0, flannel v0.26.7 and the CNI plugins v1.7.1 and v0.9.1, with no
# "requires go >=" error. An older `go` on PATH is passed over and the pinned one used.
GO_MINIMUM = "1.24.0"

DEFAULT_PROXY = "https://proxy.golang.org"
MACHINE_TO_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class ToolchainError(Exception):
    """A failure that ends the run with one line."""


def parse_go_version(text: str) -> tuple[int, int, int] | None:
    """(1, 26, 8) from `go version` output such as "go version go1.26.8 linux/amd64"; None if there is none.

    A release candidate (go1.26rc1) counts as the release before it (1, 25, 999): it is not yet that release.
    """
    m = re.search(r"\bgo(\d+)\.(\d+)(?:\.(\d+)|(rc|beta)\d+)?\b", text)
    if not m:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    if m.group(4):
        return (major, minor - 1, 999)
    return (major, minor, int(m.group(3) or 0))


def version_tuple(version: str) -> tuple[int, int, int]:
    parsed = parse_go_version("go" + version)
    if parsed is None:
        raise ValueError(f"not a Go version: {version!r}")
    return parsed


def platform_key() -> str:
    """"linux-amd64" for this machine; a machine with no pinned toolchain is an error."""
    system = platform.system().lower()
    arch = MACHINE_TO_GOARCH.get(platform.machine().lower(), platform.machine().lower())
    key = f"{system}-{arch}"
    if key not in GO_PINNED_H1:
        raise ToolchainError(
            f"no pinned Go toolchain for {key} (pinned: {', '.join(sorted(GO_PINNED_H1))}); "
            f"install Go >= {GO_MINIMUM} on PATH instead"
        )
    return key


def go_on_path(path_env: str) -> tuple[str, tuple[int, int, int]] | None:
    """The `go` first on PATH and its version, or None when there is none or it does not run."""
    go = shutil.which("go", path=path_env)
    if go is None:
        return None
    env = {**os.environ, "PATH": path_env, "GOTOOLCHAIN": "local"}
    env.pop("GOROOT", None)
    try:
        out = subprocess.run([go, "version"], capture_output=True, text=True, env=env, cwd="/", timeout=60, check=False)
    except OSError:
        return None
    version = parse_go_version(out.stdout)
    return None if version is None else (go, version)


def toolchain_dir(cache: Path, key: str, version: str = GO_PINNED) -> Path:
    return cache / "go" / "toolchain" / f"go{version}.{key}"


def module_version(key: str, version: str = GO_PINNED) -> str:
    return f"v0.0.1-go{version}.{key}"


def proxy_url() -> str:
    """The first proxy of GOPROXY (as Go reads it), or proxy.golang.org."""
    for entry in re.split(r"[,|]", os.environ.get("GOPROXY", "")):
        if entry.startswith(("https://", "http://")):
            return entry.rstrip("/")
    return DEFAULT_PROXY


def download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        raise ToolchainError(
            f"cannot download {url}: {exc}; the Go module proxy must be reachable (or set GOPROXY to a mirror), "
            f"or install Go >= {GO_MINIMUM} on PATH"
        ) from exc


def unpack_verified(zip_path: Path, prefix: str, expected_h1: str, dest: Path) -> None:
    """Unpack the module zip's files under `prefix/` into the new directory `dest`, checking the zip's h1 hash.

    h1 is Go's dirhash "Hash1": the SHA-256 of the lines "<sha256 hex>  <file name>\\n" of every file in the zip,
    sorted by name, base64-encoded. It is computed from the bytes as they are written, and on a mismatch `dest`
    is removed again. Files in bin/ and pkg/tool/ are made executable, as the go command does for toolchains it
    downloads (module zips carry no file modes).
    """
    lines = []
    dest.mkdir(mode=0o755)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                name = info.filename
                if info.is_dir():
                    continue
                rel = name.removeprefix(prefix + "/")
                if rel == name or rel.startswith("/") or ".." in rel.split("/"):
                    raise ToolchainError(f"unexpected file {name!r} in {zip_path}")
                target = dest / rel
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with archive.open(info) as src, target.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                executable = rel.startswith(("bin/", "pkg/tool/"))
                target.chmod(0o755 if executable else 0o644)
                lines.append(f"{digest.hexdigest()}  {name}\n")
        summary = hashlib.sha256("".join(lines).encode()).digest()
        actual = "h1:" + base64.b64encode(summary).decode()
        if actual != expected_h1:
            raise ToolchainError(f"{zip_path.name} has hash {actual}, expected {expected_h1}: refusing to use it")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def fetch_toolchain(cache: Path, key: str, version: str = GO_PINNED, expected_h1: str | None = None) -> Path:
    """Make sure the pinned toolchain is in the cache; return its GOROOT. Safe to run concurrently."""
    expected_h1 = expected_h1 or GO_PINNED_H1[key]
    goroot = toolchain_dir(cache, key, version)
    parent = goroot.parent
    parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (goroot / "bin" / "go").is_file():
            return goroot
        mod_version = module_version(key, version)
        url = f"{proxy_url()}/golang.org/toolchain/@v/{urllib.parse.quote(mod_version)}.zip"
        print(f"fetching Go {version} ({url})", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=parent, prefix=".fetch-") as tmp:
            zip_path = Path(tmp) / f"{mod_version}.zip"
            download(url, zip_path)
            unpacked = Path(tmp) / "go"
            unpack_verified(zip_path, f"golang.org/toolchain@{mod_version}", expected_h1, unpacked)
            zip_path.unlink()
            check_runs(unpacked / "bin" / "go", version)
            unpacked.rename(goroot)  # the directory appears complete or not at all
        print(f"Go {version} unpacked in {goroot}", file=sys.stderr)
    return goroot


def check_runs(go: Path, version: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOROOT"}
    env["GOTOOLCHAIN"] = "local"
    out = subprocess.run([str(go), "version"], capture_output=True, text=True, env=env, cwd="/", timeout=60, check=False)
    if parse_go_version(out.stdout) != version_tuple(version):
        raise ToolchainError(f"{go} does not run as Go {version}: {(out.stdout + out.stderr).strip()!r}")


def select_go(path_env: str, cache: Path) -> Path:
    """The go binary to use: the one on PATH when new enough, else the pinned toolchain from the cache."""
    found = go_on_path(path_env)
    minimum = version_tuple(GO_MINIMUM)
    if found is not None and found[1] >= minimum:
        return Path(found[0])
    why = "no go on PATH" if found is None else f"{found[0]} is Go {'.'.join(map(str, found[1]))}, older than {GO_MINIMUM}"
    key = platform_key()
    goroot = toolchain_dir(cache, key)
    if not (goroot / "bin" / "go").is_file():
        print(f"{why}: using the pinned Go {GO_PINNED} from the cache", file=sys.stderr)
        goroot = fetch_toolchain(cache, key)
    return goroot / "bin" / "go"


def main() -> int:
    cache = Path(os.environ.get("ARCHIPELAGO_CACHE", "/var/cache/archipelago"))
    try:
        print(select_go(os.environ.get("PATH", os.defpath), cache))
    except ToolchainError as exc:
        print(f"go toolchain: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"go toolchain: cannot write the Go toolchain into {cache}: {exc}; set ARCHIPELAGO_CACHE to a writable directory",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
