"""hello.py — master and child say hello both ways (seed 003, 4.4.3, Node's own IPC).

The Python equivalent of the seed's child:

    process.on('message', (msg) => { console.log('子进程收到主进程的消息：', msg); });
    process.send('hello master process!');

What it demonstrates: messages in both directions over the fork() channel, and that a child
with a ``message`` listener stays alive while the channel is open (as in Node).

Args: none. Protocol: sends ``"hello master process!"`` at start; prints every message it
gets (the master sends ``"hello child process!"``) on stdout. Ends when the parent
disconnects (or kills it).
"""

from __future__ import annotations

from ipc import parent


def on_message(message: object) -> None:
    print("子进程收到主进程的消息：", message, flush=True)


parent.on("message", on_message)

# 给主进程发消息
parent.send("hello master process!")
