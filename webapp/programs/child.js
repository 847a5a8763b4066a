// child.js — seed 001 (在子进程中计算 /sum), reproduced verbatim.
// Demonstrates: the server forks this child per request so the sum does not block it.
// Expects: any message (the seed sends "开始计算"). Sends: 4999950000 (sum of 0 <= i < 100000).
// Like the seed, it keeps listening afterwards: it ends when the parent disconnects or kills it.

// 子进程 child.js
function sum() {
  let res = 0;

  for (let i = 0; i < 10 * 10000; i++) {
    res += i;
  }

  return res;
}

process.on("message", (data) => {
  const sumRes = sum();

  // 将计算结果发送给主进程
  process.send(sumRes);
});
