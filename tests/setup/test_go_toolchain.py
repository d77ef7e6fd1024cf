"""scripts/go-toolchain.py: a machine with no usable Go gets the pinned Go from the module proxy into the cache.

The end-to-end test starts from an empty cache on a machine with no usable Go. As root, every Go tree of the host is
hidden under an empty tmpfs in a private mount namespace (Debian's /usr/bin/go 1.19, if installed, stays: it is too
old and must be passed over); otherwise PATH leaves Go out. The test runs the setup's prerequisite and toolchain
steps, builds a static cgo program with the Go it got, the way scripts/build-artifacts.sh builds flanneld (the only
cgo artifact), and runs build-artifacts.sh up to its Kubernetes step to see it use that Go. It downloads about 80 MB
from the Go module proxy.
"""

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"

spec = importlib.util.spec_from_file_location("go_toolchain", SCRIPTS / "go-toolchain.py")
go_toolchain = importlib.util.module_from_spec(spec)
spec.loader.exec_module(go_toolchain)

# A PATH with the system's tools but no Go from /usr/local/go, ~/go or ~/.local.
BARE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

PROGRAM = """package main

// static int twice(int x) { return 2 * x; }
import "C"
import (
	"os"
	"strconv"
)

func main() { os.Stdout.WriteString("twice 21 is " + strconv.Itoa(int(C.twice(21))) + "\\n") }
"""

def fake_go(directory: Path, version_line: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    go = directory / "go"
    go.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    go.chmod(0o755)
    return go


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("go version go1.19.8 linux/amd64", (1, 19, 8)),
        ("go version go1.26.8 linux/amd64", (1, 26, 8)),
        ("go version go1.24 linux/amd64", (1, 24, 0)),
        ("go version go1.24rc1 linux/amd64", (1, 23, 999)),
        ("go version devel +abc linux/amd64", None),
    ],
)
def test_go_versions_are_read_from_go_version(text, version):
    assert go_toolchain.parse_go_version(text) == version


def test_the_minimum_covers_every_go_line_of_the_artifact_modules():
    """GO_MINIMUM is at least every `go` directive of the wrapper modules build-artifacts.sh generates, and the
    pinned Go is at least GO_MINIMUM: with GOTOOLCHAIN=local an older Go refuses to build them."""
    minimum = go_toolchain.version_tuple(go_toolchain.GO_MINIMUM)
    templates = sorted((SCRIPTS / "artifacts").glob("*.go.mod.in"))
    assert templates
    for template in templates:
        lines = re.findall(r"^go (\S+)$", template.read_text(), re.MULTILINE)
        assert lines, template
        assert go_toolchain.version_tuple(lines[0]) <= minimum, (template, lines[0])
    assert minimum <= go_toolchain.version_tuple(go_toolchain.GO_PINNED)


def test_a_new_enough_go_on_path_is_used_as_it_is(tmp_path):
    go = fake_go(tmp_path / "bin", f"go version go{go_toolchain.GO_MINIMUM} linux/amd64")
    assert go_toolchain.select_go(f"{go.parent}:{BARE_PATH}", tmp_path / "cache") == go
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("line", ["go version go1.19.8 linux/amd64", "go version go1.24rc1 linux/amd64", "not a go"])
def test_an_old_go_on_path_is_passed_over_for_the_cached_toolchain(tmp_path, line):
    fake_go(tmp_path / "bin", line)
    cache = tmp_path / "cache"
    goroot = go_toolchain.toolchain_dir(cache, go_toolchain.platform_key())
    cached = fake_go(goroot / "bin", "unused")
    assert go_toolchain.select_go(f"{tmp_path / 'bin'}:{BARE_PATH}", cache) == cached


def test_a_zip_whose_hash_differs_from_the_pin_is_not_unpacked(tmp_path):
    archive = tmp_path / "module.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("golang.org/toolchain@v0.0.1-go9.9.9.linux-amd64/bin/go", "#!/bin/sh\necho go version go9.9.9\n")
    dest = tmp_path / "go"
    with pytest.raises(go_toolchain.ToolchainError, match=r"has hash h1:\S+, expected h1:pinned: refusing to use it"):
        go_toolchain.unpack_verified(archive, "golang.org/toolchain@v0.0.1-go9.9.9.linux-amd64", "h1:pinned", dest)
    assert not dest.exists()


def test_a_zip_entry_outside_the_module_is_refused(tmp_path):
    archive = tmp_path / "module.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("golang.org/toolchain@v0.0.1-go9.9.9.linux-amd64/../../escape", "x")
    with pytest.raises(go_toolchain.ToolchainError, match="unexpected file"):
        go_toolchain.unpack_verified(archive, "golang.org/toolchain@v0.0.1-go9.9.9.linux-amd64", "h1:pinned", tmp_path / "go")
    assert not (tmp_path / "go").exists()
    assert not (tmp_path.parent / "escape").exists()


def go_trees() -> list[Path]:
    """The Go installations of this host that a command could find: /usr/local/go and the tree of the go on PATH."""
    trees = {Path("/usr/local/go")}
    go = shutil.which("go")
    if go:
        trees.add(Path(go).resolve().parent.parent)
    return sorted(tree for tree in trees if tree.is_dir())


def without_go() -> list[str]:
    """A command prefix that runs its command in a private mount namespace where every Go tree of this host is an
    empty directory: a machine with no Go at all. Without root or unshare, only PATH keeps Go away."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or not go_trees():
        return []
    mounts = " && ".join(f"mount -t tmpfs -o size=1m,mode=755 none {shlex.quote(str(tree))}" for tree in go_trees())
    return [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", f'{mounts} && exec "$@"', "sh"]


def test_no_go_and_an_empty_cache_end_with_a_go_that_builds(tmp_path):
    cache = tmp_path / "cache"
    env = {
        "PATH": f"{BARE_PATH}:{os.environ['PATH']}",  # the host's PATH too: its Go directories are empty below
        "HOME": str(tmp_path),
        "ARCHIPELAGO_CACHE": str(cache),
        "LANG": "C.UTF-8",
        **{k: v for k, v in os.environ.items() if k in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")},
    }
    prefix = without_go()
    if not prefix:
        env["PATH"] = BARE_PATH

    def run(*command, cwd=None, **extra):
        return subprocess.run(
            [*prefix, *command], cwd=cwd, env={**env, **extra}, capture_output=True, text=True, timeout=900, check=False
        )

    # No Go, or only one too old to build the artifacts (Debian's 1.19 in /usr/bin), anywhere on PATH.
    found = run("/bin/sh", "-c", "command -v go && go version")
    old = go_toolchain.parse_go_version(found.stdout)
    assert found.returncode != 0 or (old is not None and old < go_toolchain.version_tuple(go_toolchain.GO_MINIMUM)), found
    for tree in go_trees() if prefix else []:
        assert run("/bin/ls", "-A", str(tree)).stdout == ""

    prerequisites = run(str(SCRIPTS / "prerequisites.sh"))
    assert prerequisites.returncode == 0, prerequisites.stderr
    assert "no go on PATH" in prerequisites.stdout or "go on PATH: go1.19" in prerequisites.stdout

    fetched = run(str(SCRIPTS / "go-toolchain.py"))
    assert fetched.returncode == 0, fetched.stderr
    goroot = cache / "go" / "toolchain" / f"go{go_toolchain.GO_PINNED}.{go_toolchain.platform_key()}"
    go = goroot / "bin" / "go"
    assert fetched.stdout == f"{go}\n"
    assert f"fetching Go {go_toolchain.GO_PINNED}" in fetched.stderr
    # Only the toolchain and its lock are left in the cache: no zip, no half-unpacked directory.
    assert sorted(p.name for p in goroot.parent.iterdir()) == [".lock", goroot.name]

    version = run(str(go), "version")
    assert version.stdout.startswith(f"go version go{go_toolchain.GO_PINNED} "), version

    # A second run finds it and fetches nothing.
    again = run(str(SCRIPTS / "go-toolchain.py"))
    assert (again.returncode, again.stdout, again.stderr) == (0, f"{go}\n", "")

    # Build offline, with cgo, statically linked: what flanneld needs from the toolchain and the host's gcc.
    source = tmp_path / "twice"
    source.mkdir()
    (source / "go.mod").write_text("module example.com/twice\n\ngo 1.24\n")
    (source / "main.go").write_text(PROGRAM)
    binary = tmp_path / "twice-bin"
    build = run(
        str(go), "build", "-trimpath", "-ldflags", "-s -w -extldflags -static", "-o", str(binary), ".",
        cwd=source, GOPROXY="off", GOTOOLCHAIN="local", GOFLAGS="-mod=mod", CGO_ENABLED="1",
        GOCACHE=str(tmp_path / "gocache"), GOPATH=str(tmp_path / "gopath"),
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert run(str(binary)).stdout == "twice 21 is 42\n"
    assert "statically linked" in run("file", str(binary)).stdout

    # scripts/build-artifacts.sh builds with this Go. Its first artifact, Calico's CRDs, comes whole; the Kubernetes
    # step is given a version the proxy does not have, so the run stops there instead of compiling for 20 minutes.
    absent = "v1.33.0-archipelago-absent"
    artifacts = run(str(SCRIPTS / "build-artifacts.sh"), KUBERNETES_VERSION=absent, CONTAINERS_CONF=str(ROOT / "lab" / "containers.conf"))
    assert artifacts.returncode != 0, artifacts.stdout
    platform_name = go_toolchain.platform_key().replace("-", "/")
    go_line = f"==> host tools\n    go version go{go_toolchain.GO_PINNED} {platform_name}, GOROOT {goroot}\n"
    assert go_line in artifacts.stdout, artifacts.stdout + artifacts.stderr
    assert f"==> kubernetes {absent}\n" in artifacts.stdout
    versions = yaml.safe_load((ROOT / "versions.yml").read_text())
    crds = cache / "artifacts" / f"calico-{versions['calico']}"
    assert (crds / "VERSIONS").is_file(), artifacts.stdout + artifacts.stderr
    assert len(list((crds / "crds").glob("crd.projectcalico.org_*.yaml"))) == 18
    assert not (cache / "artifacts" / f"kubernetes-{versions['kubernetes']}").exists()


def test_an_unreachable_proxy_ends_with_one_line_naming_it_and_the_fix(tmp_path):
    env = {"PATH": BARE_PATH, "HOME": str(tmp_path), "ARCHIPELAGO_CACHE": str(tmp_path / "cache"), "GOPROXY": "http://127.0.0.1:9"}
    result = subprocess.run(
        [*without_go(), str(SCRIPTS / "go-toolchain.py")], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert (result.returncode, result.stdout) == (1, "")
    last = result.stderr.splitlines()[-1]
    assert last.startswith("go toolchain: cannot download http://127.0.0.1:9/golang.org/toolchain/@v/v0.0.1-go1.26.8."), last
    assert "the Go module proxy must be reachable (or set GOPROXY to a mirror), or install Go >= 1.24.0 on PATH" in last
    assert [p.name for p in (tmp_path / "cache" / "go" / "toolchain").iterdir()] == [".lock"]
