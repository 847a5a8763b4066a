// fork-compute.js — seed 002 (多进程架构, /compute), reproduced verbatim.
// Demonstrates: a big computation ({max: 4e9, min: 0} in the seed) in a forked child; the
// master answers the HTTP request with the sum and then kills the child.
// Expects: a message {max, min} (both default to 0). Sends: the sum of min <= i < max as a
// bare number. Note: above 2^53 a JS number loses precision, so for max = 4e9 the result is a
// rounded double (as in the seed), not the exact 7999999998000000000.
// It keeps listening afterwards: it ends when the parent disconnects or kills it.

// child进程

// 计算任务
const longComputation = (min=0, max=0) => {
  let sum = 0
  for(let i=min;i<max;i++){
    sum += i
  }
  return sum
}

// 主进程的 FCompute <=> 子进程的 process
// 接收参数
process.on('message', ({max=0, min=0}) => {
  console.log('>>> fork-compute:', process.ppid);  // 父进程的pid
  let sum = longComputation(min, max)

  // 返回结果
  process.send(sum)
})
