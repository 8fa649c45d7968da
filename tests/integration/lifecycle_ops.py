"""The randomized lifecycle's operations: drawn where they are valid (or interestingly
invalid) in the model's state, run for real, their outcome predicted, and the invariants
checked after each (see test_lifecycle_random.py)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter

import yaml

from tests.integration.helpers import Paude, podman
from tests.integration.lifecycle_world import (
    KINDS,
    Observer,
    SessionModel,
    Work,
    group_alive,
    list_status,
)

DOMAIN_CHOICES: tuple[tuple[str, ...] | None, ...] = (None, ("default", "github"), ("pypi",))
BUSY = "is being changed by another paude or pulumi process"


class Lifecycle:
    """Draws operations valid (or interestingly invalid) in the model's state, runs them,
    predicts their outcome and checks the invariants."""

    def __init__(self, paude: Paude, rng: random.Random, log: list[str], *,
                 kills: bool = True) -> None:
        self.paude, self.rng, self.log, self.kills = paude, rng, log, kills
        self.see = Observer(paude)
        self.sessions = [SessionModel(paude.session, defined=True),
                         SessionModel(f"{paude.session}-b", defined=False)]
        self.names = [s.name for s in self.sessions]
        self.mix: Counter[str] = Counter()
        self.volumes = {name: False for name in self.names}
        self.may_delete: set[str] = set()  # the current operation may remove these volumes
        self.forced: set[str] = set()  # ...even with unsaved work
        self.serial = 0
        self.outdir = paude.home.parent / "killed"
        self.outdir.mkdir()

    # ------------------------------------------------------------------ running things

    def note(self, line: str) -> None:
        self.log.append(f"    {line}")

    def run(self, args: list[str], expect: bool | None,
            success: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        """Run paude; expect True: it succeeds (exits with one of `success`), False: it
        refuses cleanly, None: either. A refusal must change nothing."""
        before = self.see.snapshot(self.names) if expect is not True else None
        started = time.monotonic()
        result = self.paude.run(*args)
        self.note(f"paude {' '.join(args)} -> {result.returncode} "
                  f"({time.monotonic() - started:.1f}s)")
        where = f"paude {' '.join(args)}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        assert "Traceback" not in result.stderr, where
        assert BUSY not in result.stderr, f"a lock nobody holds any more is not recovered: {where}"
        if expect is True:
            assert result.returncode in success, f"expected success: {where}"
        elif expect is False:
            assert result.returncode == 1, f"expected a refusal: {where}"
        if result.returncode not in success:
            assert result.returncode == 1 and "error: " in result.stderr, where
            if before is not None:
                assert self.see.snapshot(self.names) == before, f"a refusal changed state: {where}"
        return result

    def git(self, args: list[str], expect: bool | None) -> None:
        started = time.monotonic()
        result = self.see.git(*args)
        self.note(f"git {' '.join(args)} -> {result.returncode} "
                  f"({time.monotonic() - started:.1f}s)")
        where = f"git {' '.join(args)}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        assert "Traceback" not in result.stderr, where
        if expect is not None:
            assert (result.returncode == 0) == expect, where

    def fresh(self) -> int:
        self.serial += 1
        return self.serial

    # ------------------------------------------------------------------ choosing

    def candidates(self) -> list[tuple[float, str, SessionModel | None]]:
        found: list[tuple[float, str, SessionModel | None]] = [(1.0, "host_commit", None)]
        for s in self.sessions:
            if s.crashed:
                found += [(6, "apply", s), (1, "plan", s), (1, "destroy", s),
                          (0.5, "destroy_data", s)]
                continue
            live = s.stack and not s.drift
            up = live and s.agent_up
            if not s.defined:
                found += [(3, "create", s), (0.3, "apply", s), (0.3, "plan", s)]
            else:
                found += [(0.8 if s.stack else 3, "create", s), (1.5 if s.stack else 3, "apply", s),
                          (1, "plan", s), (0.6, "edit", s)]
            found += [(2 if up else 0.3, "stop", s), (2 if live and not up else 0.3, "start", s)]
            if up and s.initialized:
                found += [(5, "commit", s), (1.5, "dirty", s), (0.5, "tag", s)]
                found += [(0.8, "stash", s)] if s.dirty else []
            if s.stack:
                found.append((4 if up and not s.initialized else 0.8, "remote_add", s))
            if s.remote:
                found += [(1.2, "push", s), (3 if up else 0.4, "pull", s), (1, "fetch", s)]
            found.append((0.6 if s.stack else 0.2, "destroy", s))
            if s.stack or s.volume:
                found += [(0.8, "destroy_data", s), (0.2, "delete_unconfirmed", s)]
            if live:
                found.append((0.3, "drift", s))
            if self.kills:
                # Most interesting where the apply has work to do.
                found.append((1.5 if not s.stack or s.pending or s.drift else 0.5, "kill", s))
        return found

    def step(self, number: int) -> None:
        found = self.candidates()
        _, op, s = self.rng.choices(found, weights=[w for w, _, _ in found])[0]
        self.mix[op] += 1
        self.log.append(f"#{number} {op} {s.name if s else ''}".rstrip())
        self.may_delete.clear()
        self.forced.clear()
        getattr(self, f"op_{op}")(s)
        started = time.monotonic()
        self.check()
        self.note(f"invariants checked ({time.monotonic() - started:.1f}s)")

    # ------------------------------------------------------------------ paude commands

    def op_create(self, s: SessionModel) -> None:
        if s.defined and self.rng.random() < 0.8:
            yolo, domains = s.yolo, s.domains  # the flags it was defined with
        else:
            yolo = self.rng.random() < 0.5
            domains = self.rng.choice((None, None, ("pypi",)))
        args = ["create", s.name, *(["--yolo"] if yolo else []),
                *(f"--allowed-domains={d}" for d in domains or ())]
        conflict = s.defined and ((yolo and not s.yolo) or (domains and domains != s.domains))
        if self.run(args, expect=not conflict).returncode == 0:
            if not s.defined:
                s.yolo, s.domains = yolo, domains
            self.applied(s)

    def op_apply(self, s: SessionModel) -> None:
        if self.run(["apply", s.name, "--yes"], expect=s.defined).returncode == 0:
            self.applied(s)

    def applied(self, s: SessionModel) -> None:
        """After a successful apply: everything exists, and a plan is clean."""
        unchanged = s.stack and s.containers and not (s.pending or s.drift or s.crashed)
        # After a crash too: the killed run's containers count only once in the state.
        new = not s.containers
        s.defined = s.stack = s.containers = s.volume = s.remote = True
        s.drift = s.crashed = False
        s.applied = (s.yolo, s.domains)
        if not unchanged:
            # Running is not state: an apply starts what it creates and leaves the rest.
            observed = self.see.session(s.name, {}, set())
            s.agent_up = observed.state_of(s.agent) == "running"
            s.proxy_up = observed.state_of(f"paude-{s.name}-proxy") == "running"
            if new:
                assert s.agent_up and s.proxy_up, f"a new session is not running: {observed}"
        planned = self.run(["plan", s.name, "--detailed-exitcode"], expect=True, success=(0, 2))
        assert planned.returncode == 0, f"a plan right after apply is not clean:\n{planned.stdout}"

    def op_edit(self, s: SessionModel) -> None:
        """The user edits paude.yaml: yolo on or off, or other allowed domains."""
        path = self.paude.repo / "paude.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = data["sessions"].get(s.name) or {}
        if self.rng.random() < 0.5:
            s.yolo = not s.yolo
            spec.pop("yolo", None) if not s.yolo else spec.update(yolo=True)
        else:
            s.domains = self.rng.choice([d for d in DOMAIN_CHOICES if d != s.domains])
            spec.pop("allowed_domains", None) if s.domains is None else spec.update(
                allowed_domains=list(s.domains))
        data["sessions"][s.name] = spec
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        self.note(f"paude.yaml: sessions.{s.name} = {spec}")

    def op_plan(self, s: SessionModel) -> None:
        result = self.run(["plan", s.name, "--detailed-exitcode"],
                          expect=None if s.crashed else s.defined, success=(0, 2))
        if s.crashed:
            assert result.returncode in (0, 2), result.stderr
        elif s.defined:
            changes = not s.stack or s.pending or s.drift
            assert result.returncode == (2 if changes else 0), result.stdout

    def op_stop(self, s: SessionModel) -> None:
        expect = (s.stack and not s.drift) or (None if s.stack else False)
        if self.run(["stop", s.name], expect=expect).returncode == 0:
            s.agent_up = s.proxy_up = False

    def op_start(self, s: SessionModel) -> None:
        # Without a terminal, start does not attach (as in scripts and CI).
        expect = (s.stack and not s.drift) or (None if s.stack else False)
        if self.run(["start", s.name], expect=expect).returncode == 0:
            s.agent_up = s.proxy_up = True

    def op_remote_add(self, s: SessionModel) -> None:
        up = s.stack and not s.drift and s.agent_up
        expect: bool | None = up and not (s.initialized and (s.dirty or not self.fast_forward(s)))
        if s.drift:
            expect = None
        if self.run(["remote", "add", "--push", s.name], expect=expect).returncode == 0:
            s.remote = True
        if up:
            s.initialized = True  # the workspace is prepared before the push

    def op_destroy(self, s: SessionModel) -> None:
        expect = None if s.crashed else s.stack
        if self.run(["destroy", s.name, "--yes"], expect=expect).returncode == 0:
            self.gone(s)

    def op_destroy_data(self, s: SessionModel) -> None:
        force = self.rng.random() < 0.3
        if self.rng.random() < 0.5:
            args = ["destroy", s.name, "--yes", "--delete-data"]
        else:
            args = ["delete", s.name, "--confirm"]
        args += ["--force"] if force else []
        expect: bool | None
        if self.unsaved(s) and not force:
            expect = False
        elif s.crashed or s.drift or not s.stack:
            # Without its container a workspace cannot be checked: refused unless forced.
            expect = None
        else:
            expect = True
        self.may_delete.add(s.name)
        if force:
            self.forced.add(s.name)
        if self.run(args, expect=expect).returncode == 0:
            self.gone(s)
            s.forget_workspace()

    def op_delete_unconfirmed(self, s: SessionModel) -> None:
        self.run(["delete", s.name], expect=False)

    def gone(self, s: SessionModel) -> None:
        s.stack = s.containers = s.agent_up = s.proxy_up = s.remote = False
        s.drift = s.crashed = False

    # ------------------------------------------------------------------ the agent, git

    def op_commit(self, s: SessionModel) -> None:
        n = self.fresh()
        if self.rng.random() < 0.75:
            sha = self.see.agent_sh(s, f"cd /workspace && echo {n} > agent-{n}.txt && git add -A "
                                       f"&& git commit -qm 'agent {n}' && git rev-parse HEAD")
            # git add -A took the changed and untracked files into the commit.
            s.work = [w for w in s.work if w.kind not in ("uncommitted", "untracked")]
            s.dirty = False
            s.add_work(Work("commit", sha, "main"))
        else:
            # A commit on another branch, made without touching the work tree.
            sha = self.see.agent_sh(
                s, "cd /workspace && parent=$(git rev-parse -q --verify refs/heads/side || "
                   f"git rev-parse HEAD) && c=$(git commit-tree 'HEAD^{{tree}}' -p $parent "
                   f"-m 'side {n}') && git update-ref refs/heads/side $c && echo $c")
            s.add_work(Work("commit", sha, "side"))
        self.note(f"agent commit {sha[:12]}")

    def op_dirty(self, s: SessionModel) -> None:
        if self.rng.random() < 0.5:
            self.see.agent_sh(s, "echo change >> /workspace/README.md")
            s.dirty = True
            s.add_work(Work("uncommitted", "README.md"))
        else:
            n = self.fresh()
            self.see.agent_sh(s, f"echo scratch > /workspace/scratch-{n}.txt")
            s.add_work(Work("untracked", f"scratch-{n}.txt"))

    def op_stash(self, s: SessionModel) -> None:
        sha = self.see.agent_sh(s, "cd /workspace && git stash push -q && "
                                   "git rev-parse refs/stash")
        s.work = [w for w in s.work if w.kind != "uncommitted"]
        s.dirty = False
        s.add_work(Work("stash", sha))

    def op_tag(self, s: SessionModel) -> None:
        """A commit only a tag reaches."""
        n = self.fresh()
        sha = self.see.agent_sh(s, f"cd /workspace && c=$(git commit-tree 'HEAD^{{tree}}' -p HEAD "
                                   f"-m 'tagged {n}') && git tag t-{n} $c && echo $c")
        s.add_work(Work("tag", sha))

    def fast_forward(self, s: SessionModel) -> bool:
        """Would a push of the host's main fast-forward the session's main?"""
        head = self.see.agent_sh(s, "git -C /workspace rev-parse -q --verify refs/heads/main "
                                    "|| true")
        return not head or self.see.git("merge-base", "--is-ancestor", head,
                                        "HEAD").returncode == 0

    def op_push(self, s: SessionModel) -> None:
        ready = s.stack and not s.drift and s.agent_up and s.initialized
        expect: bool | None = ready and not s.dirty and self.fast_forward(s)
        self.git(["push", "-q", f"paude-{s.name}", "main"], None if s.crashed else expect)

    def op_pull(self, s: SessionModel) -> None:
        ready = s.stack and not s.drift and s.agent_up and s.initialized
        self.git(["pull", "--no-rebase", "--no-edit", "-q", f"paude-{s.name}", "main"],
                 None if s.crashed else ready)

    def op_fetch(self, s: SessionModel) -> None:
        ready = s.stack and not s.drift and s.agent_up and s.initialized
        tags = ["--tags"] if self.rng.random() < 0.3 else []
        self.git(["fetch", "-q", *tags, f"paude-{s.name}"], None if s.crashed else ready)

    def op_host_commit(self, _: None) -> None:
        n = self.fresh()
        (self.paude.repo / f"host-{n}.txt").write_text(f"{n}\n", encoding="utf-8")
        self.git(["add", f"host-{n}.txt"], True)
        self.git(["commit", "-qm", f"host {n}"], True)

    def op_drift(self, s: SessionModel) -> None:
        """The agent container removed by hand: drift the next plan shows."""
        podman("rm", "--force", "--time", "0", s.agent)
        self.note(f"podman rm {s.agent}")
        s.drift, s.agent_up = True, False

    def unsaved(self, s: SessionModel) -> list[Work]:
        """Guarded work the host has not saved."""
        host = self.see.host()
        return [w for w in s.work if KINDS[w.kind].guarded and not KINDS[w.kind].saved(host, w)]

    # ------------------------------------------------------------------ killed applies

    def op_kill(self, s: SessionModel) -> None:
        """SIGKILL a running apply (or create): after the k-th resource step it reports (the
        engine at work), or after a random delay; paude alone, or its whole process group
        (the engine and the providers with it)."""
        create = not s.defined or self.rng.random() < 0.25
        args = ["create", s.name, *(["--yolo"] if s.yolo else [])] if create else [
            "apply", s.name, "--yes"]
        steps = self.rng.randint(1, 8) if self.rng.random() < 0.7 else 0
        delay = self.rng.uniform(0.0, 1.5) if steps else self.rng.uniform(0.5, 20.0)
        whole_group = self.rng.random() < 0.5
        err = self.outdir / f"{self.fresh()}.err"
        with err.open("w") as errors:
            child = subprocess.Popen([str(self.paude.exe), *args], cwd=self.paude.repo,
                                     env=self.paude.env(), stdout=subprocess.DEVNULL,
                                     stderr=errors, start_new_session=True)
            started = time.monotonic()
            while child.poll() is None:
                seen = sum(1 for line in err.read_text().splitlines()
                           if line.startswith("  ") and line.endswith("..."))
                if steps and seen >= steps:
                    time.sleep(delay)
                    break
                if not steps and time.monotonic() - started >= delay:
                    break
                time.sleep(0.05)
        code = child.poll()
        when = f"after step {steps} + {delay:.1f}s" if steps else f"after {delay:.1f}s"
        if code is not None:
            self.note(f"paude {' '.join(args)} finished before the kill ({when}) -> {code}")
            assert code == 0 and BUSY not in err.read_text(), err.read_text()
            self.applied(s)
            return
        os.killpg(child.pid, signal.SIGKILL) if whole_group else child.kill()
        child.wait()
        deadline = time.monotonic() + 120
        while group_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if group_alive(child.pid):
            os.killpg(child.pid, signal.SIGKILL)
        self.note(f"paude {' '.join(args)} killed {when} "
                  f"({'process group' if whole_group else 'paude only'}); it said:\n"
                  + "\n".join(f"      {line}" for line in err.read_text().splitlines()[-4:]))
        s.crashed = True
        spec = (yaml.safe_load((self.paude.repo / "paude.yaml").read_text()).get("sessions")
                or {}).get(s.name)
        if spec is not None and not s.defined:
            s.defined, s.yolo = True, bool(spec.get("yolo"))

    # ------------------------------------------------------------------ invariants

    def check(self) -> None:
        host = self.see.host()
        remotes = self.see.remotes()
        listed = self.see.listed()
        for s in self.sessions:
            seen = self.see.session(s.name, listed, remotes)
            if self.volumes[s.name] and not seen.volume:
                assert s.name in self.may_delete, f"the workspace of {s.name} vanished"
                lost = [w for w in s.work if KINDS[w.kind].guarded
                        and not KINDS[w.kind].saved(host, w)]
                assert s.name in self.forced or not lost, (
                    f"the workspace of {s.name} was removed without --force while the host "
                    f"lacks {lost}")
                s.forget_workspace()
            self.volumes[s.name] = seen.volume
            if s.crashed:
                continue
            assert seen.volume == s.volume, f"{s.name}: volume {seen.volume}, model {s.volume}"
            assert seen.remote == s.remote, f"{s.name}: remote {seen.remote}, model {s.remote}"
            agent, proxy = seen.state_of(s.agent), seen.state_of(f"paude-{s.name}-proxy")
            if not s.stack:
                assert seen.listed is None, f"{s.name} is listed after destroy: {seen.listed}"
                assert not seen.containers and not seen.networks, (
                    f"{s.name} left objects behind: {seen}")
                continue
            assert seen.listed == list_status(agent, proxy), (
                f"paude list says {seen.listed} for {s.name}; podman: {seen.containers}")
            if not s.drift:
                assert agent and proxy, f"{s.name}: containers missing: {seen.containers}"
                assert seen.listed == s.status(), (
                    f"{s.name} is {seen.listed}; expected {s.status()}: {seen.containers}")
            if agent == "running" and s.initialized:
                missing = self.see.missing_work(s)
                assert not missing, f"the agent's work in {s.name} is gone: {missing}"
