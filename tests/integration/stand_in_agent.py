"""A stand-in for Claude Code that commits what it is told, for lifecycle tests.

Run inside the agent container as `python3 -c SOURCE [flags] [-p INSTRUCTION]`. Each
instruction is `commit FILE TEXT`: write TEXT to /workspace/FILE and commit it. With
-p it runs one instruction and exits (headless); otherwise it reads instructions from
its terminal. Every instruction is also appended to ~/.claude/history.txt, the state
paude must keep across stops and restarts."""

SOURCE = r'''
import os, subprocess, sys

def run(line):
    parts = line.split(maxsplit=2)
    if len(parts) == 3 and parts[0] == "commit":
        _, name, text = parts
        with open(os.path.join("/workspace", name), "w") as fh:
            fh.write(text + "\n")
        subprocess.run(["git", "-C", "/workspace", "add", name], check=True)
        subprocess.run(["git", "-C", "/workspace", "commit", "-qm", "agent: " + name],
                       check=True)
        history = os.path.expanduser("~/.claude/history.txt")
        with open(history, "a") as fh:
            fh.write(line + "\n")
        print("committed " + name, flush=True)
    else:
        print("unknown instruction: " + line, flush=True)

args = sys.argv[1:]
print("stand-in agent ready, args=" + repr(args), flush=True)
if "-p" in args:
    run(args[args.index("-p") + 1])
    sys.exit(0)
for line in sys.stdin:
    if line.strip():
        run(line.strip())
'''
