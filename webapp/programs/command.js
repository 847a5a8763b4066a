// command.js — seed 003 (4.4.2 创建多进程), reproduced verbatim.
// Demonstrates: the same script run by exec('node command.js ' + i), spawn('node',
// ['command.js', i]) and fork('command.js', [i]); each run is a different process (pid).
// Args: argv[2], the loop index. Output: one line on stdout and one on stderr; exits 0.
// No channel use: under fork() it simply ends, and the parent sees exit and close.
console.log(`pid: ${process.pid}，进程${process.argv[2]}的stdout`);
console.error(`pid: ${process.pid}，进程${process.argv[2]}的stderr`);
