// Start-up/memory child (Node): says "ready" at once and stays alive until disconnected.
process.send('ready');
process.on('message', () => {});
