// argv-child.js — seed 002 (示例2: spawn('node', ['child.js', item]) for item of [4, 5, 6]).
// The seed does not show this child.js; this is the smallest one that fits: it prints the
// argument it was given, so each of the parallel children can be told apart on the console.
// Args: argv[2] (the item). Output: one stdout line; exits 0 right away. Also serves the seed's
// "five forks in a loop, watch their close events" and execFile('node', ['./child.js', item]).
console.log(`子进程 ${process.pid} 收到参数: ${process.argv[2]}`);
