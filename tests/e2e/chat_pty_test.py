#!/usr/bin/env python3
"""strata chat driven through a pseudo-terminal, as a person at a keyboard drives it.

  chat_pty_test.py STRATA_BINARY MODEL

Session A: a message gets a streamed reply equal to `strata run`'s greedy text for the templated
prompt; a second turn prefills only what the session's KV cache does not hold; /save writes
valid JSON; /reset forgets the conversation; /quit exits 0.
Session B: Ctrl-C during a long reply stops it, the prompt comes back and the program keeps
running (the partial reply is kept in the conversation); Ctrl-C at the prompt does not exit.
"""
import json
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import time

STRATA, MODEL = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="strata-chat-pty-")
PROMPT = "\n> "
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


class Chat:
    def __init__(self, *args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(STRATA, [STRATA, "chat", "-q", "-t", "2", "-m", MODEL, "--temp", "0", *args])
        self.out = ""
        self.reads = 0  # how many separate reads brought output (a streamed reply comes in many)

    def read_until(self, needle, timeout=30, start=0):
        end = time.time() + timeout
        while needle not in self.out[start:]:
            left = end - time.time()
            if left <= 0:
                raise TimeoutError(f"waited for {needle!r}; got:\n{self.out[start:]}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    raise EOFError(f"chat ended while waiting for {needle!r}:\n{self.out[start:]}")
                if not data:
                    raise EOFError(self.out)
                self.out += data.decode("utf-8", "replace")
                self.reads += 1
        return self.out.index(needle, start)

    def send(self, text):
        os.write(self.fd, text.encode())

    # Sends a line and returns what was printed after its echo, up to the next prompt.
    def say(self, line, timeout=60):
        start = len(self.out)
        self.send(line + "\r")
        at = self.read_until(PROMPT, timeout, start)
        shown = self.out[start:at].replace("\r", "")
        # The terminal (and libedit) echo the typed line, possibly twice: the reply follows the last.
        return shown.rsplit(line, 1)[-1]

    def alive(self):
        return os.waitpid(self.pid, os.WNOHANG) == (0, 0)

    def wait_exit(self, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                return os.waitstatus_to_exitcode(status)
            try:  # keep draining the terminal so the child never blocks on output
                if select.select([self.fd], [], [], 0.05)[0]:
                    os.read(self.fd, 4096)
            except OSError:
                pass
        os.kill(self.pid, 9)
        return None


def reference(prompt_text, n):
    path = os.path.join(TMP, "prompt.txt")
    with open(path, "w") as f:
        f.write(prompt_text)
    out = subprocess.run([STRATA, "run", "--json", "-q", "-t", "2", "-m", MODEL, "-f", path, "-n", str(n),
                          "--temp", "0", "--stop", "\nUser:"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def reply_text(shown):
    """The reply in what the terminal showed after a line was sent, without the --stats line."""
    return "\n".join(l for l in shown.split("\n") if not l.startswith("[prompt ")).strip()


# ---- Session A: replies, the cache between turns, /save, /reset, /quit.
a = Chat("-n", "24", "--stats")
a.read_until("> ")
first = a.say("Tell me a story.")
ref = reference("User: Tell me a story.\nAssistant:", 24)
check(reply_text(first) == ref["text"].strip(), f"first reply equals strata run's greedy text ({ref['text']!r})")
m = re.search(r"\[prompt (\d+) tokens: (\d+) prefilled, (\d+) from cache", first)
check(m is not None and m.group(2) == m.group(1), "turn 1 prefills its whole prompt")

second = a.say("What happened next?")
m2 = re.search(r"\[prompt (\d+) tokens: (\d+) prefilled, (\d+) from cache", second)
check(m2 is not None, "turn 2 reports its prompt")
if m2:
    n_prompt, prefilled, cached = map(int, m2.groups())
    # The cache holds turn 1 (prompt + reply); only the new user turn and the reply's last token
    # (sampled but never run through the model) need a forward pass.
    check(cached > 0 and prefilled < n_prompt - 20, f"turn 2 prefills only new tokens ({prefilled} of {n_prompt}, {cached} cached)")

save1 = os.path.join(TMP, "conv.json")
out = a.say("/save " + save1)
check("saved 4 messages" in out, "/save reports 4 messages")
with open(save1) as f:
    conv = json.load(f)
check([m["role"] for m in conv["messages"]] == ["user", "assistant", "user", "assistant"], "/save writes the turns as JSON")
check(conv["messages"][1]["content"] == ref["text"].strip(), "saved assistant reply matches what was shown")
check(not any(n.startswith("conv.json.tmp") for n in os.listdir(TMP)), "no temporary file left behind")

out = a.say("/reset")
check("cleared" in out, "/reset clears the conversation")
save2 = os.path.join(TMP, "empty.json")
a.say("/save " + save2)
with open(save2) as f:
    check(json.load(f)["messages"] == [], "after /reset the conversation is empty")
again = a.say("Tell me a story.")
check(reply_text(again) == ref["text"].strip(), "after /reset the same message gets the same reply")
m3 = re.search(r"\[prompt (\d+) tokens: (\d+) prefilled", again)
check(m3 is not None and m3.group(1) == m3.group(2), "after /reset nothing comes from the cache")
a.send("/quit\r")
check(a.wait_exit() == 0, "/quit exits with status 0")

# ---- Session B: Ctrl-C stops a long reply and the chat goes on.
b = Chat("-n", "1800", "--ignore-eos", "--system", "You tell long stories.")
b.read_until("> ")
start = len(b.out)
reads_before = b.reads
b.send("Tell me a very long story.\r")
b.read_until("Tell me a very long story.", 10, start)
echo_end = len(b.out)
while len(b.out) - echo_end < 80:  # wait until some of the reply has streamed in
    if not select.select([b.fd], [], [], 10)[0]:
        break
    b.out += os.read(b.fd, 4096).decode("utf-8", "replace")
    b.reads += 1
check(len(b.out) - echo_end >= 80, "the reply streams in")
check(b.reads - reads_before >= 3, f"the reply arrived in pieces ({b.reads - reads_before} reads)")
b.send("\x03")
at = b.read_until("[stopped]", 20, echo_end)
b.read_until(PROMPT, 10, at)
time.sleep(0.2)
check(b.alive(), "Ctrl-C during a reply leaves the program running")
partial = b.out[echo_end:at].strip()
check(len(partial) >= 40, "the reply was cut short, not finished (%d characters)" % len(partial))
save3 = os.path.join(TMP, "partial.json")
b.say("/save " + save3)
with open(save3) as f:
    conv = json.load(f)
check([m["role"] for m in conv["messages"]] == ["system", "user", "assistant"], "the stopped reply is kept")
check(len(conv["messages"][2]["content"]) >= 40, "kept reply holds what was generated")
start = len(b.out)
b.send("\x03")  # at the prompt: abandons the line, does not exit
b.read_until("> ", 10, start)
time.sleep(0.2)
check(b.alive(), "Ctrl-C at the prompt does not exit")
out = b.say("/system Be short.")
check("system message set" in out, "/system sets the system message")
b.send("/quit\r")
check(b.wait_exit() == 0, "/quit exits with status 0 after an interrupted reply")

print(f"{len(failures)} failure(s)" if failures else "all chat checks passed")
sys.exit(1 if failures else 0)
