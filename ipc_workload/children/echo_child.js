// Benchmark child (Node): says "ready" at once, then echoes every message. Used both under
// ipc.fork (our parent) and under Node's own fork (node_fork_bench.js).
process.send('ready');
process.on('message', (msg) => process.send(msg));
