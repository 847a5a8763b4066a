// The frame inspector (the "Channel bytes" tab): filled in with the ipc tap.

export class FrameView {
  constructor(root) {
    this.root = root;
  }

  show(job) {
    this.job = job;
  }
}
