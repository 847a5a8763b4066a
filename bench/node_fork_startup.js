// Node's own fork(): time from fork() to the child's first message, and the child's VmRSS /
// VmHWM (kB, from /proc/<pid>/status) once it said "ready". Prints one JSON document.
// usage: node node_fork_startup.js <repeats>
const { fork } = require('child_process');
const fs = require('fs');
const path = require('path');

const repeats = Number(process.argv[2] || 10);
const CHILD = path.join(__dirname, 'children', 'idle_child.js');

function status(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number((text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) || [])[1]);
  return { rss_kb: kb('VmRSS'), hwm_kb: kb('VmHWM') };
}

(async () => {
  const samples = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    const child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise((resolve) => child.once('message', resolve));
    const startup = Number(process.hrtime.bigint() - t0) / 1e9;
    samples.push({ startup, ...status(child.pid) });
    child.disconnect();
    await new Promise((resolve) => child.once('exit', resolve));
  }
  console.log(JSON.stringify({ node: process.version, samples }));
})();
