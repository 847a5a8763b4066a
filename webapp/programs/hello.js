// hello.js — seed 003 (4.4.3 进程通信, 1. Node 原生 IPC): the child of master.js.
// Demonstrates: messages both ways over the fork() channel. The master sends
// 'hello child process!' and logs what it gets; this child logs the master's message and sends
// 'hello master process!' right at start-up.
// Expects: any messages (logged to stdout). Sends: 'hello master process!' once, at start.
// Like the seed, it stays alive while the channel is open (a 'message' listener keeps Node up):
// it ends when the parent disconnects or kills it.
process.on('message', (msg) => {
    console.log('子进程收到主进程的消息：', msg);
});

// 给主进程发消息
process.send('hello master process!');
