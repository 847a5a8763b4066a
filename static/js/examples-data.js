// The seeds' examples (five Chinese Node.js tutorials), each as: what it teaches, the Node code
// from the seed, the Python equivalent with our `ipc` library, how to run it here, and the
// result the seed shows. `run(ctx)` starts jobs / calls endpoints; `check(ctx)` reads the
// store and says what is on screen now and whether it matches the seed.

const SEED_000 = "seed 000 (fork, /getSum)";
const SEED_001 = "seed 001 (/sum, processes vs threads)";
const SEED_002 = "seed 002 (spawn / exec / execFile / fork, process events)";
const SEED_003 = "seed 003 (exec, spawn, fork of command.js; IPC and an extra pipe)";

const sum = (min, max) => {
  // Exact sum of min <= i < max with BigInt (the seed's JS loop loses precision past 2^53).
  const a = BigInt(min);
  const b = BigInt(max);
  return ((b - a) * (a + b - 1n)) / 2n;
};

/** Messages a job sent to the parent, as a list of payloads. */
function replies(ctx, id) {
  return ctx.events(id).filter((e) => e.type === "message" && e.data?.direction !== "to_child").map((e) => ctx.payload(e));
}

function finished(j) {
  return j && (j.state === "exited" || j.state === "signaled" || j.state === "failed");
}

export const EXAMPLES = [
  {
    id: "getsum",
    title: "fork('./compute.js') — the /getSum demo",
    seed: SEED_000,
    teaches:
      "Memory is not shared between processes: the parent and the child only talk through the channel. The parent sends '开始计算', the child sums 0…10000 and sends back 50005000 — the HTTP server stays free meanwhile.",
    node: `const computeProcess = fork('./compute.js');
computeProcess.send('开始计算');
computeProcess.on('message', (data) => {
  console.log('主进程接收到的信息:', data);   // 50005000
  response.end(String(data));
});`,
    python: `import ipc

child = ipc.fork("compute.js")          # .js runs under node
child.on("message", lambda data: print("parent got", data))   # 50005000
child.send("开始计算")`,
    expected: "50005000",
    endpoint: "/getSum",
    async run(ctx) {
      await ctx.launch({ kind: "fork", program: "compute.js", message: "开始计算" });
    },
    check(ctx) {
      const [id] = ctx.jobs;
      const got = replies(ctx, id);
      return { ok: got.some((m) => String(m) === "50005000"), text: got.length ? `child → parent: ${got.map(String).join(", ")}` : "" };
    },
  },
  {
    id: "sum",
    title: "fork('./child.js') — the /sum demo",
    seed: SEED_001,
    teaches:
      "A process is the unit of memory (its own address space); a thread is the unit of computation and shares its process's memory. JS has one thread, so heavy work goes to another process: the child sums 0…99999.",
    node: `const childProcess = cp.fork("./child.js");
childProcess.send("开始计算");
childProcess.on("message", (data) => {
  res.end("sumRes is " + data);      // sumRes is 4999950000
});`,
    python: `child = ipc.fork("child.js")
child.once("message", lambda data: print("sumRes is", data))
child.send("开始计算")`,
    expected: "4999950000",
    endpoint: "/sum",
    async run(ctx) {
      await ctx.launch({ kind: "fork", program: "child.js", message: "开始计算" });
    },
    check(ctx) {
      const got = replies(ctx, ctx.jobs[0]);
      return { ok: got.some((m) => String(m) === "4999950000"), text: got.length ? `child → parent: ${got.map(String).join(", ")}` : "" };
    },
  },
  {
    id: "compute",
    title: "fork('./fork-compute') with {max, min} — the /compute demo",
    seed: SEED_002,
    teaches:
      "A forked process is a whole new V8 (claimed: ≥30 ms and ≥10 MB each) — worth it for CPU work, not for concurrency. Here: the seed's child over 0…10⁸, and the same range split over the cores with Python children.",
    node: `const FCompute = fork('./fork-compute');
FCompute.send({ max: 1e8, min: 0 });       // the seed uses 4e9
FCompute.on('message', info => {
  res.end(\`结果: \${info}\`);
  FCompute.kill();
});`,
    python: `import os, ipc

n = os.cpu_count()
step = 10**8 // n
parts = []
for k in range(n):
    c = ipc.fork("compute.py")
    c.on("message", lambda m: parts.append(m))
    c.send({"min": k * step, "max": (k + 1) * step})
# sum(parts) == 4999999950000000`,
    expected: `结果: ${sum(0, 1e8)}`,
    endpoint: "/compute?min=0&max=100000000",
    async run(ctx) {
      const cores = Math.max(2, Math.min(8, navigator.hardwareConcurrency || 2));
      await ctx.launch({ kind: "fork", program: "fork-compute.js", message: { max: 1e8, min: 0 } });
      const step = 1e8 / cores;
      for (let k = 0; k < cores; k++) {
        await ctx.launch({ kind: "fork", program: "compute.py", message: { min: k * step, max: (k + 1) * step } });
      }
    },
    check(ctx) {
      const [node, ...py] = ctx.jobs;
      const want = String(sum(0, 1e8));
      const nodeRes = replies(ctx, node).filter((m) => /^\d+$/.test(String(m))).map(String);
      const parts = py.map((id) => finalNumber(replies(ctx, id)));
      const pyDone = parts.length && parts.every((p) => p != null);
      const pySum = pyDone ? parts.reduce((a, b) => a + BigInt(b), 0n).toString() : null;
      const lines = [];
      if (nodeRes.length) lines.push(`node fork-compute.js: 结果: ${nodeRes.at(-1)}`);
      if (pyDone) lines.push(`${py.length} Python children: 结果: ${pySum}`);
      else if (py.length) lines.push(`Python children: ${parts.filter((p) => p != null).length}/${py.length} done`);
      return { ok: nodeRes.includes(want) && pySum === want, text: lines.join("\n") };
    },
  },
  {
    id: "compute-4e9",
    title: "The seed's own range: {max: 4e9, min: 0}",
    seed: SEED_002,
    teaches:
      "The seed's real workload: 4 billion additions. Node's loop takes tens of seconds and, past 2^53, its double rounds the sum; Python's integers are exact, and split over the cores (each child sums its slice by Gauss's formula when it is this big) the answer is immediate.",
    node: `const FCompute = fork('./fork-compute');
FCompute.send({ max: 4e9, min: 0 });
FCompute.on('message', info => res.end(\`结果: \${info}\`));
// 结果: 7999999996067115000  (a double: not exact)`,
    python: `n = os.cpu_count()
step = 4 * 10**9 // n
for k in range(n):
    c = ipc.fork("compute.py")
    c.send({"min": k * step, "max": (k + 1) * step})
# sum of the parts == 7999999998000000000 (exact)`,
    expected: `结果: ${sum(0, 4e9)} (exact); Node's double is close but not equal`,
    async run(ctx) {
      const cores = Math.max(2, Math.min(8, navigator.hardwareConcurrency || 2));
      await ctx.launch({ kind: "fork", program: "fork-compute.js", message: { max: 4e9, min: 0 } });
      const step = 4e9 / cores;
      for (let k = 0; k < cores; k++) {
        await ctx.launch({ kind: "fork", program: "compute.py", message: { min: k * step, max: (k + 1) * step } });
      }
    },
    check(ctx) {
      const [node, ...py] = ctx.jobs;
      const want = sum(0, 4e9);
      const nodeRes = replies(ctx, node).map(String).filter((m) => /^\d+$/.test(m)).at(-1);
      const parts = py.map((id) => finalNumber(replies(ctx, id)));
      const pyDone = parts.length && parts.every((p) => p != null);
      const pySum = pyDone ? parts.reduce((a, b) => a + BigInt(b), 0n) : null;
      const lines = [];
      if (pyDone) lines.push(`${py.length} Python children: 结果: ${pySum}${pySum === want ? " (exact)" : ""}`);
      if (nodeRes) {
        const off = BigInt(nodeRes) - want;
        lines.push(`node fork-compute.js: 结果: ${nodeRes} (${off === 0n ? "exact" : `off by ${off}: a double past 2^53`})`);
      } else if (ctx.jobs.length) lines.push("node fork-compute.js: still adding (this takes a while)…");
      const close = nodeRes && Math.abs(Number(BigInt(nodeRes) - want)) / Number(want) < 1e-6;
      return { ok: pySum === want && Boolean(close), text: lines.join("\n") };
    },
  },
  {
    id: "spawn-ls",
    title: "spawn('ls', ['-lh', '/usr'])",
    seed: SEED_002,
    teaches: "spawn streams the child's stdout and stderr as they come ('data' events), then 'close' with the exit code.",
    node: `const ls = child_process.spawn('ls', ['-lh', '/usr']);
ls.stdout.on('data', (data) => console.log(\`stdout: \${data}\`));
ls.stderr.on('data', (data) => console.error(\`stderr: \${data}\`));
ls.on('close', (code) => console.log(\`子进程退出，退出码 \${code}\`));`,
    python: `p = ipc.spawn("ls", ["-lh", "/usr"])
p.on("stdout", lambda b: print("stdout:", b.decode(), end=""))
p.on("close", lambda code, sig: print("子进程退出，退出码", code))`,
    expected: "total … bin … lib … share, then close 0",
    async run(ctx) {
      await ctx.launch({ kind: "spawn", command: "ls", args: ["-lh", "/usr"] });
    },
    check(ctx) {
      const j = ctx.job(ctx.jobs[0]);
      const out = ctx.output(ctx.jobs[0]);
      const done = j?.closed || finished(j);
      return { ok: /total/.test(out) && /\bbin\b/.test(out) && done && j.exitCode === 0, text: `${out}${done ? `\n子进程退出，退出码 ${j.exitCode}` : ""}` };
    },
  },
  {
    id: "spawn-node-args",
    title: "spawn('node', ['child.js', item]) for 4, 5, 6",
    seed: SEED_002,
    teaches: "Each spawn is its own process with its own argv; three run at once and finish in any order.",
    node: `[4, 5, 6].forEach((item) => {
  const ls = child_process.spawn('node', ['child.js', item]);
  ls.stdout.on('data', (data) => console.log(\`stdout: \${data}\`));
  ls.on('close', (code) => console.log(\`子进程退出，退出码 \${code}\`));
});`,
    python: `for item in (4, 5, 6):
    p = ipc.spawn("node", ["argv-child.js", str(item)])
    p.on("stdout", lambda b: print("stdout:", b.decode(), end=""))`,
    expected: "one line per child with its argument 4, 5, 6; each closes with 0",
    async run(ctx) {
      for (const item of ["4", "5", "6"]) await ctx.launch({ kind: "spawn", command: "node", args: ["argv-child.js", item] });
    },
    check(ctx) {
      const outs = ctx.jobs.map((id) => ctx.output(id).trim());
      const all = ctx.jobs.every((id) => finished(ctx.job(id)));
      const ok = all && ["4", "5", "6"].every((n, i) => outs[i].includes(n)) && ctx.jobs.every((id) => ctx.job(id).exitCode === 0);
      return { ok, text: outs.map((o, i) => `child ${4 + i}: ${o}`).join("\n") };
    },
  },
  {
    id: "exec-cat",
    title: "exec('cat ./child.js')",
    seed: SEED_002,
    teaches: "exec runs a command line through a shell and buffers all output (up to maxBuffer) for one callback.",
    node: `child_process.exec('cat ./child.js', (error, stdout, stderr) => {
  if (error) return console.error(\`执行的错误: \${error}\`);
  console.log(\`stdout: \${stdout}\`);
});`,
    python: `r = ipc.exec("cat ./child.js", cwd=PROGRAMS)
print("stdout:", r.stdout)`,
    expected: "the source of child.js (process.on('message', …))",
    async run(ctx) {
      // The seed runs it next to child.js: cwd is the shipped programs' folder (relative to
      // the server's working directory, the project root).
      await ctx.launch({ kind: "exec", command: "cat ./child.js", cwd: "webapp/programs" });
    },
    check(ctx) {
      const out = ctx.output(ctx.jobs[0]);
      return { ok: /process\.on/.test(out) && finished(ctx.job(ctx.jobs[0])), text: out };
    },
  },
  {
    id: "execfile-node",
    title: "execFile('node', ['--version'])",
    seed: SEED_002,
    teaches: "execFile runs a file directly, without a shell: no shell parsing, no injection.",
    node: `child_process.execFile('node', ['--version'], (error, stdout) => {
  console.log('data: ', stdout);      // v20.x
});`,
    python: `r = ipc.exec_file("node", ["--version"])
print("data:", r.stdout)`,
    expected: "v<major>.<minor>.<patch>",
    async run(ctx) {
      // The server's command policy lets node run only the shipped programs; if it refuses
      // `--version`, say so (the refusal is part of what the page shows) and fail visibly.
      try {
        await ctx.launch({ kind: "exec_file", command: "node", args: ["--version"] });
      } catch (err) {
        ctx.note(`execFile('node', ['--version']) refused by the server: ${err.message}`);
      }
    },
    check(ctx) {
      const out = ctx.jobs.length ? ctx.output(ctx.jobs[0]).trim() : "";
      return { ok: /^v\d+\.\d+\.\d+/.test(out), text: [ctx.notes.join("\n"), out ? `data:  ${out}` : ""].filter(Boolean).join("\n") };
    },
  },
  {
    id: "fork-five",
    title: "Five forked children in a loop, each with its 'close' event",
    seed: SEED_002,
    teaches: "'close' comes after 'exit' and after every stdio stream ended; each child has its own pid.",
    node: `for (let i = 0; i < 5; i++) {
  const ls = child_process.fork('./child.js');
  ls.on('close', (code) => console.log('>>> close 事件', code));
}`,
    python: `for i in range(5):
    c = ipc.fork("argv-child.js", args=[str(i)])
    c.on("close", lambda code, sig: print(">>> close 事件", code))`,
    expected: "5 × '>>> close 事件 0', five different pids",
    async run(ctx) {
      for (let i = 0; i < 5; i++) await ctx.launch({ kind: "fork", program: "argv-child.js", args: [String(i)] });
    },
    check(ctx) {
      const closes = ctx.jobs.map((id) => ctx.job(id)).filter((j) => j?.closed);
      const pids = new Set(ctx.jobs.map((id) => ctx.job(id)?.pid).filter(Boolean));
      return { ok: closes.length === 5 && pids.size === 5, text: closes.map((j) => `>>> close 事件 ${j.exitCode ?? j.signal} (pid ${j.pid})`).join("\n") };
    },
  },
  {
    id: "seed003",
    title: "exec, spawn and fork of command.js, three times each",
    seed: SEED_003,
    teaches: "Three ways to make a process: exec buffers output, spawn streams it, fork also opens a message channel. Every child has its own pid.",
    node: `for (var i = 0; i < 3; i++) {
  child_process.exec('node command.js ' + i, (err, stdout, stderr) => { ... });
  child_process.spawn('node', ['command.js', i]);
  child_process.fork('command.js', [i]);
}
// command.js
console.log(\`pid: \${process.pid}，进程\${process.argv[2]}的stdout\`);
console.error(\`pid: \${process.pid}，进程\${process.argv[2]}的stderr\`);`,
    python: `for i in range(3):
    ipc.exec(f"node command.js {i}", cwd=PROGRAMS)
    ipc.spawn("node", ["command.js", str(i)], cwd=PROGRAMS)
    ipc.fork("command.js", args=[str(i)], silent=True)`,
    expected: "9 children, each printing 'pid: N，进程i的stdout' and '…的stderr'",
    async run(ctx) {
      for (let i = 0; i < 3; i++) {
        await ctx.launch({ kind: "exec", command: `node command.js ${i}` });
        await ctx.launch({ kind: "spawn", command: "node", args: ["command.js", String(i)] });
        await ctx.launch({ kind: "fork", program: "command.js", args: [String(i)] });
      }
    },
    check(ctx) {
      const lines = ctx.jobs.map((id) => {
        const j = ctx.job(id);
        return `${j?.kind ?? "?"} pid ${j?.pid ?? "?"}: ${ctx.output(id).trim().replace(/\n/g, " | ")}`;
      });
      const ok = ctx.jobs.length === 9 && ctx.jobs.every((id) => /的stdout/.test(ctx.output(id)) && /的stderr/.test(ctx.output(id)));
      return { ok, text: lines.join("\n") };
    },
  },
  {
    id: "hello",
    title: "Master and child say hello both ways",
    seed: SEED_003,
    teaches: "The IPC channel is two-way: n.send() ↔ process.on('message'), process.send() ↔ n.on('message').",
    node: `// master.js
const n = cp.fork('child.js');
n.on('message', (msg) => console.log('主进程收到子进程的消息：', msg));
n.send('hello child process!');
// child.js
process.on('message', (msg) => console.log('子进程收到主进程的消息：', msg));
process.send('hello master process!');`,
    python: `# master
n = ipc.fork("hello.py")
n.on("message", lambda m: print("主进程收到子进程的消息：", m))
n.send("hello child process!")
# hello.py (child)
from ipc import parent
parent.on("message", lambda m: print("子进程收到主进程的消息：", m))
parent.send("hello master process!")`,
    expected: "hello master process! (to the parent) and hello child process! (to the child)",
    async run(ctx) {
      await ctx.launch({ kind: "fork", program: "hello.js", message: "hello child process!" });
    },
    check(ctx) {
      const got = replies(ctx, ctx.jobs[0]).map(String);
      const out = ctx.output(ctx.jobs[0]);
      const toChild = ctx.events(ctx.jobs[0]).some((e) => e.type === "message" && e.data?.direction === "to_child");
      return { ok: got.some((m) => m.includes("hello master process!")) && toChild, text: [got.length ? `主进程收到子进程的消息： ${got.join(", ")}` : "", out.trim()].filter(Boolean).join("\n") };
    },
  },
  {
    id: "fd3",
    title: "A child writes to an extra stdio pipe (fd 3), read as a socket",
    seed: SEED_003,
    teaches: "Besides the IPC channel, extra stdio entries ('pipe' at index 3…) are duplex sockets between parent and child.",
    node: `// master.js
const child = spawn('node', ['fd3-child.js'], { stdio: [null, null, null, 'pipe'] });
child.stdio[3].on('data', data => console.log(\`来自子进程消息 \${data}\`));
// fd3-child.js
const net = require('net');
const pipe = new net.Socket({ fd: 3 });
pipe.write('hello master process!');`,
    python: `p = ipc.spawn("node", ["fd3-child.js"], stdio=["pipe", "pipe", "pipe", "pipe"])
p.on("fd3", lambda b: print("来自子进程消息", b.decode()))`,
    expected: "来自子进程消息 hello master process! (on fd 3)",
    async run(ctx) {
      await ctx.launch({ kind: "spawn", command: "node", args: ["fd3-child.js"], stdio: ["pipe", "pipe", "pipe", "pipe"] });
    },
    check(ctx) {
      const evs = ctx.events(ctx.jobs[0]).filter((e) => e.type === "fd3" || e.data?.fd === 3);
      const text = evs.map((e) => ctx.text(e)).join("");
      return { ok: /hello master process!/.test(text), text: text ? `来自子进程消息 ${text}` : ctx.output(ctx.jobs[0]) };
    },
  },
  {
    id: "signals",
    title: "exit after kill / kill -2 / kill -9",
    seed: SEED_002,
    teaches: "'exit' gives (code, signal): a child killed by a signal has code null and the signal's name — SIGTERM, SIGINT, SIGKILL.",
    node: `const child1 = child_process.fork('./child.js');
child1.on('exit', (code, signal) => console.log('>>> exit:', code, signal));
// kill <pid>      → null SIGTERM
// kill -2 <pid>   → null SIGINT
// kill -9 <pid>   → null SIGKILL`,
    python: `for sig in ("SIGTERM", "SIGINT", "SIGKILL"):
    c = ipc.fork("child.js")
    c.on("exit", lambda code, signal: print(">>> exit:", code, signal))
    c.kill(sig)`,
    expected: ">>> exit: null SIGTERM / null SIGINT / null SIGKILL",
    async run(ctx) {
      const sigs = ["SIGTERM", "SIGINT", "SIGKILL"];
      const jobs = [];
      // The seed's own child.js (it keeps listening, so it is alive when the signal comes).
      // Node dies of SIGINT by default at any moment; a Python child interrupted while it is
      // still starting may instead exit with code 1 (KeyboardInterrupt), which is not the lesson.
      for (let i = 0; i < 3; i++) jobs.push(await ctx.launch({ kind: "fork", program: "child.js", args: [] }));
      await ctx.waitFor(() => jobs.every((j) => ctx.job(j.id)?.spawnAt != null), 10000);
      for (let i = 0; i < 3; i++) await ctx.kill(jobs[i].id, sigs[i]);
    },
    check(ctx) {
      const lines = ctx.jobs.map((id) => {
        const j = ctx.job(id);
        return finished(j) ? `>>> exit: ${j.exitCode ?? "null"} ${j.signal ?? "null"}` : `pid ${j?.pid ?? "?"} running…`;
      });
      const sigs = ctx.jobs.map((id) => ctx.job(id)?.signal);
      return { ok: sigs.join(",") === "SIGTERM,SIGINT,SIGKILL", text: lines.join("\n") };
    },
  },
];

function finalNumber(list) {
  for (let i = list.length - 1; i >= 0; i--) {
    const m = list[i];
    if (typeof m === "number" || typeof m === "bigint" || (typeof m === "string" && /^\d+$/.test(m))) return String(m);
    if (m && typeof m === "object") {
      const v = m.sum ?? m.result;
      if (v != null && m.type !== "progress") return String(v);
    }
  }
  return null;
}
