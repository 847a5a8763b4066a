// Node's own fork() IPC measuring itself, with the workload of ipc_workload/ (make bench, the lab):
// start-to-first-message, sequential round trips of a small JSON message (p50/p99),
// pipelined small messages (messages/s) and pipelined 1 MiB messages (MB/s of payload echoed).
// usage: node node_fork_bench.js <rtt count> <msgs count> <big count> <startups> [warm-up]
// prints one JSON line per phase as it is measured ({"phase": "rtt", ...}: the transport lab
// streams them) and the summary, one JSON document, on the last line.
const { fork } = require('child_process');
const path = require('path');

const [rttN, msgsN, bigN, startN, warmN = 200] = process.argv.slice(2).map(Number);
const CHILD = path.join(__dirname, 'children', 'echo_child.js');
const now = () => Number(process.hrtime.bigint()) / 1e9;

function start() {
  return new Promise((resolve) => {
    const t0 = now();
    const child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', () => resolve({ child, startup: now() - t0 }));
  });
}

function roundTrips(child, n) {
  return new Promise((resolve) => {
    const times = [];
    let t0 = 0;
    let i = 0;
    const onMessage = () => {
      times.push(now() - t0);
      i += 1;
      if (i === n) {
        child.off('message', onMessage);
        resolve(times);
        return;
      }
      t0 = now();
      child.send({ i, op: 'ping', text: 'hello' });
    };
    child.on('message', onMessage);
    t0 = now();
    child.send({ i, op: 'ping', text: 'hello' });
  });
}

function pipelined(child, n, makeMsg) {
  return new Promise((resolve) => {
    let got = 0;
    const t0 = now();
    const onMessage = () => {
      got += 1;
      if (got === n) {
        child.off('message', onMessage);
        resolve(now() - t0);
      }
    };
    child.on('message', onMessage);
    for (let i = 0; i < n; i++) child.send(makeMsg(i));
  });
}

function phase(name, numbers) {
  console.log(JSON.stringify({ phase: name, ...numbers }));
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

(async () => {
  const startups = [];
  for (let s = 0; s < startN; s++) {
    const { child, startup } = await start();
    startups.push(startup);
    child.disconnect();
    await new Promise((r) => child.once('exit', r));
  }
  const { child } = await start();
  phase('ready', {});
  await roundTrips(child, warmN); // warm-up
  const times = (await roundTrips(child, rttN)).sort((a, b) => a - b);
  phase('rtt', { rtt_p50: pct(times, 50), rtt_p99: pct(times, 99) });
  const msgsElapsed = await pipelined(child, msgsN, (i) => ({ i, op: 'ping', text: 'hello' }));
  phase('msgs', { msgs_per_s: msgsN / msgsElapsed });
  const big = 'x'.repeat(1024 * 1024);
  await pipelined(child, 2, () => big); // warm-up
  const bigElapsed = await pipelined(child, bigN, () => big);
  phase('big', { mb_per_s: (bigN * big.length) / 1e6 / bigElapsed });
  child.disconnect();
  startups.sort((a, b) => a - b);
  console.log(JSON.stringify({
    node: process.version,
    rtt_p50: pct(times, 50),
    rtt_p99: pct(times, 99),
    msgs_per_s: msgsN / msgsElapsed,
    mb_per_s: (bigN * big.length) / 1e6 / bigElapsed,
    startup_median: startups.length ? pct(startups, 50) : null,
    startup_min: startups.length ? startups[0] : null,
  }));
})();
