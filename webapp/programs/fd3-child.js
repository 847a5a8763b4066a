// fd3-child.js — seed 003 (4.4.3 进程通信, 2. 多个进程可以通过 Socket 进行通信).
// Demonstrates: talking to the parent over an extra stdio pipe instead of the IPC channel.
// The master runs spawn('node', ['child'], {stdio: [null, null, null, 'pipe']}) and reads
// the extra pipe, which the child sees as fd 3, opened here as a socket.
// Args: none. Writes 'hello master process!' to fd 3, then ends (nothing else keeps it alive).
//
// Deviation from the seed, on purpose: the seed opens `net.Socket({ fd: 1 })` (its stdout) and
// its master reads `child.stdio[1]`, so the message really travelled over stdout and the extra
// 'pipe' at stdio[3] was never used. Here the child writes to fd 3, so the extra pipe is what
// carries the message, which is what the example sets out to show.
// Second, smaller change: `readable: false`. A socket opened on an fd starts reading it, and
// that pending read keeps Node alive until the parent closes its end; this child only writes,
// so without it the process would never end by itself.
// child.js
const net = require('net');
const pipe = net.Socket({ fd: 3, readable: false });
pipe.write('hello master process!');
