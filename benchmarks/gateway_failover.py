"""Island gateway failover: the gap in traffic and the established connections that survive when the active gateway
stops, or when one of its links goes down.

Runs against the molecule island lab (`molecule converge -s island`), whose cluster alpha has two gateways (alpha-gw and
alpha-gw2: keepalived moves alpha's next hops 10.223.1.10 and 10.223.0.10 to the active one, conntrackd replicates its
connection tracking). Each round:

1. finds the active gateway (the one holding the internal virtual address) and waits until the backup has
   synchronised (its conntrackd external cache holds this round's connections);
2. keeps a steady stream of probes and long-lived TCP connections through the gateways, all bounded in count and time:
   - ping from alpha's node to the external host (egress, SNAT), one every 20 ms: the gap is the longest time between
     two replies;
   - `--connections` TCP connections from alpha's node to an echo server on the external host (egress), and as many
     from the external host to alpha's `echo` export (DNAT to an echo server on alpha's node); each sends one byte
     every 50 ms and waits for its echo;
3. stops the active gateway (`podman stop`; with `--kill`, `podman kill`: SIGKILL, the gateway goes silent; with
   `--link transit` or `--link internal`, `ip link set dev ... down` in the gateway: keepalived tracks both links),
   keeps the streams going, then counts the connections that still echo;
4. starts the stopped gateway again, or brings its link up, and waits until it is back as a backup that did not take
   the addresses back (checked again after four advertisement intervals). A link comes back while the streams still
   run, so the round also measures the gap after it (the second gap: none expected) and the connections must live
   through both; the gateway must also have its routes back (the peers' routes through the link left the kernel with
   the link). The next round waits until the returned gateway has synchronised before it fails the other one over.

Only lab addresses are targeted. Exit status 1 when a goal is missed: every gap at most 2 s, every connection alive,
the returning gateway a backup that left the addresses where they were (and, after a link went down, with its routes).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX = "arch-mol-island-"
GATEWAYS = ("alpha-gw", "alpha-gw2")
INTERNAL_VIP = "10.223.1.10"
NODE, EXT = "10.223.1.11", "10.223.0.100"
ECHO_PORT = 7100
ECHO_MATCH = f"socat TCP-LISTE[N]:{ECHO_PORT}"  # a pattern that does not match the shell that runs pkill
TRANSIT_VIP = "10.223.0.10"
GAP_GOAL = 2.0
CONNTRACKD = "conntrackd -C /etc/conntrackd/conntrackd.conf"
# The gateways' interfaces (the role's defaults) and the protocol of the routes the gateway's routes unit installs.
LINKS = {"transit": "eth1", "internal": "eth0"}
ROUTE_PROTOCOL = 177
# After a gateway returns, how long the survivor must keep the addresses: four advertisement intervals (0.5 s each),
# more than the three after which a backup that hears nothing takes the addresses.
SETTLE = 2.0

# One long-lived TCP connection: one byte every INTERVAL, each echo awaited (10 s at most), until the file STOP exists
# (DURATION seconds at most). It creates READY after 20 echoes. Prints {"echoes", "max_gap", "error"} as JSON: error is
# null when the connection lived to the end.
ECHO_CLIENT = r"""
import json, os, socket, sys, time
address, port, ready, stop = sys.argv[1], int(sys.argv[2]), sys.argv[5], sys.argv[6]
duration, interval = float(sys.argv[3]), float(sys.argv[4])
echoes, last, max_gap, error = 0, None, 0.0, None
try:
    s = socket.create_connection((address, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(10)
    end = time.monotonic() + duration
    last = time.monotonic()
    while time.monotonic() < end and not os.path.exists(stop):
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise OSError("connection closed by the peer")
        now = time.monotonic()
        max_gap, last, echoes = max(max_gap, now - last), now, echoes + 1
        if echoes == 20:
            open(ready, "w").close()
        time.sleep(interval)
    s.close()
except OSError as exc:
    error = f"{type(exc).__name__}: {exc}"
print(json.dumps({"echoes": echoes, "max_gap": round(max_gap, 3), "error": error}))
"""


def podman_env() -> dict:
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf"))}


def sh(host: str, command: str, timeout: float = 60, check: bool = True, stdin: str | None = None) -> str:
    proc = subprocess.run(["podman", "exec", "-i", f"{PREFIX}{host}", "sh", "-c", command], input=stdin, env=podman_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode:
        raise RuntimeError(f"{host}: {command!r} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return proc.stdout


class Spawned:
    """A command in a lab host, in the background; its output goes to a temporary file (ping's is larger than a pipe)."""

    def __init__(self, host: str, argv: list[str], stdin: str | None = None):
        self.out = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(["podman", "exec", "-i", f"{PREFIX}{host}", *argv], env=podman_env(), text=True,
                                     stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT)
        self.proc.stdin.write(stdin or "")
        self.proc.stdin.close()

    def result(self, timeout: float) -> str:
        self.proc.wait(timeout=timeout)
        self.out.seek(0)
        return self.out.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def wait_for(condition, timeout: float, step: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def running(host: str) -> bool:
    proc = subprocess.run(["podman", "inspect", "-f", "{{.State.Running}}", f"{PREFIX}{host}"], env=podman_env(),
                          capture_output=True, text=True, check=False, timeout=30)
    return proc.stdout.strip() == "true"


def holds_vip(host: str, vip: str = INTERNAL_VIP) -> bool:
    return running(host) and vip in sh(host, f"ip -o -4 address show to {vip}", check=False)


def holds_any_vip(host: str) -> bool:
    return holds_vip(host, INTERNAL_VIP) or holds_vip(host, TRANSIT_VIP)


def gateway_routes(host: str) -> list[str]:
    """The routes the gateway's routes unit installed (the peers' global ranges), sorted."""
    return sorted(sh(host, f"ip -4 route show proto {ROUTE_PROTOCOL}", check=False).splitlines())


def active_gateway() -> str:
    holders = [g for g in GATEWAYS if holds_vip(g)]
    if len(holders) != 1:
        raise RuntimeError(f"expected one active alpha gateway, found {holders or 'none'}")
    return holders[0]


def echo_vip(ephemeral: Path) -> str:
    import yaml

    return yaml.safe_load((ephemeral / "network-plan.gateway-alpha.lock.yml").read_text())["vips"]["echo"]


def external_cache(host: str) -> str:
    """The connections a backup gateway has received from the active one (conntrackd's external cache)."""
    return sh(host, f"{CONNTRACKD} -e", check=False)


def synchronised(backup: str, ports: int = 1) -> bool:
    """The backup holds at least `ports` replicated connections to the echo port."""
    return len(re.findall(rf"dport={ECHO_PORT}\b", external_cache(backup))) >= ports


def start_echo_servers(seconds: int) -> None:
    for host in ("ext1", "alpha-cp1"):
        stop_echo_server(host)
        sh(host, f"setsid timeout {seconds} socat TCP-LISTEN:{ECHO_PORT},fork,reuseaddr PIPE "
                 "</dev/null >/dev/null 2>&1 &")
    for host in ("ext1", "alpha-cp1"):
        if not wait_for(lambda h=host: f":{ECHO_PORT} " in sh(h, "ss -ltn"), 15):
            raise RuntimeError(f"the echo server on {host} is not listening")


def stop_echo_server(host: str) -> None:
    sh(host, f"pkill -f '{ECHO_MATCH}' || true", check=False)


def stop_echo_servers() -> None:
    for host in ("ext1", "alpha-cp1"):
        stop_echo_server(host)


def ping_stamps(output: str) -> list[float]:
    """The ping replies' times (ping -D: seconds since the epoch)."""
    return [float(m) for m in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", output, re.M)]


def ping_gap(output: str) -> tuple[float, int, int]:
    """Longest time between two ping replies (ping -D timestamps), replies received, and probes sent."""
    stamps = ping_stamps(output)
    sent = re.search(r"(\d+) packets transmitted", output)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return max(gaps) if gaps else float("inf"), len(stamps), int(sent.group(1)) if sent else 0


def split_gaps(output: str, at: float) -> tuple[float, float]:
    """Longest time between two ping replies whose second one came before `at` (epoch seconds: the failover), and after
    it (the gateway's return: the second gap)."""
    stamps = ping_stamps(output)
    pairs = list(zip(stamps, stamps[1:], strict=False))
    before = [b - a for a, b in pairs if b <= at]
    after = [b - a for a, b in pairs if b > at]
    return max(before) if before else float("inf"), max(after) if after else float("inf")


def lost_after(output: str, at: float) -> int:
    """Probes sent after the last reply before `at` that were never answered (the last probe, in flight when ping was
    interrupted, is not counted): a gap with no lost probe is a delay (this loaded machine), not a cut."""
    replies = [(float(t), int(q)) for t, q in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", output, re.M)]
    sent = re.search(r"(\d+) packets transmitted", output)
    last = int(sent.group(1)) if sent else max((q for _, q in replies), default=0)
    start = max((q for t, q in replies if t <= at), default=0)
    answered = {q for t, q in replies if q > start}
    return sum(1 for q in range(start + 1, last) if q not in answered)


HOW = ("stop", "kill", "transit", "internal")


def fail(active: str, how: str) -> None:
    """stop: the container's systemd shuts down (keepalived gives the addresses up first); kill: SIGKILL, the active
    gateway goes silent and the backup takes over when its advertisements stop; transit/internal: that link goes down
    in the gateway (keepalived enters the fault state)."""
    if how in LINKS:
        sh(active, f"ip link set dev {LINKS[how]} down", timeout=60)
        return
    command = ["podman", "kill", f"{PREFIX}{active}"] if how == "kill" else ["podman", "stop", "-t", "10", f"{PREFIX}{active}"]
    subprocess.run(command, env=podman_env(), check=True, capture_output=True, timeout=60)


def failover_round(vip: str, connections: int = 2, before: float = 2.0, after: float = 6.0, restart: bool = True,
                   how: str = "stop") -> dict:
    """One failover: streams through the active gateway, fail it (`how`), count what survived, bring it back."""
    if how not in HOW:
        raise ValueError(f"how is {how!r}; one of {', '.join(HOW)}")
    active = active_gateway()
    backup = next(g for g in GATEWAYS if g != active)
    routes_before = gateway_routes(active) if how in LINKS else []
    limit = 180  # seconds: every stream stops by then whatever happens
    marks = "/tmp/archipelago-failover"
    for host in ("alpha-cp1", "ext1"):
        sh(host, f"rm -f {marks}.*")
    interval = 0.02
    ping = Spawned("alpha-cp1", ["timeout", str(limit + 10), "ping", "-D", "-n", "-i", str(interval), "-c", str(int(limit / interval)),
                                 "-W", "1", EXT])
    clients = []
    for i in range(connections):
        for kind, host, address in (("egress", "alpha-cp1", EXT), ("export", "ext1", vip)):
            argv = ["timeout", str(limit + 20), "python3", "-", address, str(ECHO_PORT), str(limit), "0.05", f"{marks}.ready.{kind}{i}",
                    f"{marks}.stop"]
            clients.append((kind, Spawned(host, argv, ECHO_CLIENT)))
    stopped = back = returned_at = None
    try:
        # Every connection is up and echoing, and the backup has received all of them, before the active gateway stops.
        def echoing() -> bool:
            return all(sh(h, f"ls {marks}.ready.* 2>/dev/null | wc -l").strip() == str(connections) for h in ("alpha-cp1", "ext1"))

        if not wait_for(echoing, 90):  # podman exec alone takes tens of seconds on this machine under load
            raise RuntimeError("the long-lived connections did not start echoing")
        if not wait_for(lambda: synchronised(backup, 2 * connections), 30):
            raise RuntimeError(f"the backup {backup} did not receive the connections: conntrackd -e shows\n{external_cache(backup)}")
        time.sleep(before)
        stopped_at = time.monotonic()
        stopped = True
        fail(active, how)
        stop_seconds = time.monotonic() - stopped_at
        took_over = wait_for(lambda: holds_vip(backup) and holds_vip(backup, TRANSIT_VIP), 10, step=0.2)
        released = not holds_any_vip(active)
        time.sleep(after)
        if how in LINKS and restart:
            # The link comes back while the streams still run: the returning gateway must not take the addresses
            # (a second gap, or connections broken) and the streams go on for a while after it is back as a backup.
            returned_at = time.time()
            back = link_back(active, backup, how, routes_before)
            time.sleep(after / 2)
        for host in ("alpha-cp1", "ext1"):
            sh(host, f"touch {marks}.stop")
        sh("alpha-cp1", "pkill -INT -f '[p]ing -D -n -i' || true", check=False)
        results = []
        for kind, client in clients:
            out = client.result(timeout=30)
            try:
                results.append({"kind": kind, **json.loads(out.strip().splitlines()[-1])})
            except (IndexError, ValueError):
                results.append({"kind": kind, "echoes": 0, "max_gap": None, "error": f"no result: {out[-500:]}"})
        out = ping.result(timeout=30)
    finally:
        for _, client in clients:
            client.kill()
        ping.kill()
        if stopped and restart and back is None:
            back = link_back(active, backup, how, routes_before) if how in LINKS else bring_back(active, backup)
    gap, replies, sent = ping_gap(out)
    second_gap = None
    if returned_at is not None:
        gap, second_gap = split_gaps(out, returned_at)
    outcome = {"active": active, "backup": backup, "how": how, "took_over": took_over, "released": released,
               "stop_s": round(stop_seconds, 1),
               "gap_s": round(gap, 3), "ping_replies": replies, "ping_sent": sent,
               "survived": sum(1 for r in results if r["error"] is None), "connections": len(results), "clients": results}
    if restart:
        outcome.update(back)
    if second_gap is not None:
        outcome["second_gap_s"] = round(second_gap, 3)
        outcome["lost_after_return"] = lost_after(out, returned_at)
    return outcome


def bring_back(stopped: str, active: str) -> dict:
    """Start the stopped gateway; it must come back as a backup (the active one keeps the addresses) and resync."""
    subprocess.run(["podman", "start", f"{PREFIX}{stopped}"], env=podman_env(), check=True, capture_output=True, timeout=60)
    started = time.monotonic()
    sh(stopped, "timeout 90 systemctl is-system-running --wait", check=False, timeout=120)
    backup_ready = wait_for(lambda: sh(stopped, "systemctl is-active keepalived conntrackd", check=False).split() == ["active", "active"]
                            and "Entering BACKUP STATE" in sh(stopped, "journalctl -b -u keepalived -o cat", check=False), 60)
    time.sleep(SETTLE)
    return {"returned_as_backup": backup_ready, "kept_by_survivor": holds_vip(active) and not holds_any_vip(stopped),
            "return_s": round(time.monotonic() - started, 1)}


def link_back(failed: str, active: str, how: str, routes_before: list[str]) -> dict:
    """Bring the failed gateway's link up; it must leave the fault state as a backup (the active one keeps the
    addresses) with the routes it had before the link went down."""
    since = int(time.time())  # the containers share the host's clock
    started = time.monotonic()
    sh(failed, f"ip link set dev {LINKS[how]} up", timeout=60)
    backup_ready = wait_for(lambda: "Entering BACKUP STATE" in sh(failed, f"journalctl -u keepalived -o cat --since @{since}",
                                                                     check=False), 60)
    routes_back = wait_for(lambda: gateway_routes(failed) == routes_before, 60)
    time.sleep(SETTLE)
    return {"returned_as_backup": backup_ready, "kept_by_survivor": holds_vip(active) and not holds_any_vip(failed),
            "routes_back": routes_back, "return_s": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="failovers (the gateways take turns)")
    parser.add_argument("--connections", type=int, default=2, help="long-lived connections of each kind (egress, export) per round")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--kill", action="store_true", help="podman kill (SIGKILL, a silent gateway) instead of podman stop")
    how.add_argument("--link", choices=sorted(LINKS), help="take this link of the active gateway down instead, then up again")
    args = parser.parse_args()
    how = args.link or ("kill" if args.kill else "stop")
    lock = "network-plan.gateway-alpha.lock.yml"
    found = [Path(p) for p in glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.island")) if (Path(p) / lock).exists()]
    if not found:
        sys.exit("No molecule island lab with alpha's gateways: run `molecule converge -s island` first.")
    ephemeral = max(found, key=lambda p: (p / lock).stat().st_mtime)
    vip = echo_vip(ephemeral)
    load_before = os.getloadavg()
    start_echo_servers(60 * (args.rounds + 1) + 300)
    rounds = []
    try:
        for number in range(args.rounds):
            outcome = failover_round(vip, connections=args.connections, how=how)
            rounds.append(outcome)
            what = {"stop": "stopped", "kill": "killed"}.get(how, f"{how} link down")
            routes = (f", routes back: {outcome['routes_back']}, gap after the link came back {outcome['second_gap_s']} s "
                      f"({outcome['lost_after_return']} pings lost)" if how in LINKS else "")
            print(f"round {number + 1}: {outcome['active']} {what} ({outcome['stop_s']} s), gap {outcome['gap_s']} s "
                  f"({outcome['ping_replies']} of {outcome['ping_sent']} pings answered), "
                  f"{outcome['survived']} of {outcome['connections']} "
                  f"connections survived, addresses released: {outcome['released']}, returned as backup: "
                  f"{outcome['returned_as_backup']}, addresses kept by the survivor: {outcome['kept_by_survivor']}{routes}, "
                  f"back in {outcome['return_s']} s", flush=True)
            for client in outcome["clients"]:
                if client["error"]:
                    print(f"  {client['kind']}: {client['error']} after {client['echoes']} echoes", flush=True)
    finally:
        stop_echo_servers()
    load_after = os.getloadavg()
    gaps = [r["gap_s"] for r in rounds]
    print(f"load average before {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}, after {load_after[0]:.1f} "
          f"{load_after[1]:.1f} {load_after[2]:.1f}; {args.rounds} failovers ({how}), {args.connections} connections of each "
          "kind per round")
    print(f"gap: median {statistics.median(gaps):.2f} s, worst {max(gaps):.2f} s (goal <= {GAP_GOAL}); connections survived: "
          f"{sum(r['survived'] for r in rounds)} of {sum(r['connections'] for r in rounds)}")
    if how in LINKS:
        print(f"gap after the link came back: worst {max(r['second_gap_s'] for r in rounds):.2f} s")
    ok = all(r["gap_s"] <= GAP_GOAL and r["survived"] == r["connections"] and r["released"] and r["returned_as_backup"]
             and r["kept_by_survivor"] and r.get("routes_back", True) and r.get("second_gap_s", 0) <= GAP_GOAL for r in rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
