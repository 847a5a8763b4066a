// compute.js — seed 000 (child_process.fork() 与 /getSum), reproduced verbatim.
// Demonstrates: a forked Node child that waits for one message, does the CPU work the HTTP
// server must not do itself (sum 0..10000 inclusive), and answers with process.send(sum).
// Expects: any message (the seed sends '开始计算'). Sends: 50005000 (a bare number).
// Like the seed, it keeps listening afterwards: it ends when the parent disconnects or kills it.

// 子进程 - 负责计算

// 接收主进程的消息
process.on('message', (data) => {
  console.log('子进程 ID:', process.pid);
  console.log('子进程接收到的信息:', data);

  // 计算 0 到 10000 的累加和
  let sum = 0;
  for (let i = 0; i <= 10000; i++) {
    sum += i;
  }

  // 发送计算结果给主进程
  process.send(sum);
});
