// A bounded tail of a process's output. Nix can print megabytes while building; a failed build
// only needs its last lines for the error and the admin API, so memory stays constant.

export const DEFAULT_LOG_TAIL_BYTES = 64 * 1024;

export class LogTail {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = false;

  constructor(private readonly limitBytes: number = DEFAULT_LOG_TAIL_BYTES) {
    if (!Number.isInteger(limitBytes) || limitBytes < 1) throw new RangeError('limitBytes must be a positive integer');
  }

  append(chunk: Buffer | string): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (buf.length === 0) return;
    this.chunks.push(buf);
    this.size += buf.length;
    while (this.size > this.limitBytes) {
      const first = this.chunks[0]!;
      const excess = this.size - this.limitBytes;
      this.dropped = true;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }

  /** The kept bytes as text; when older output was dropped, starts at the next whole line. */
  toString(): string {
    const text = Buffer.concat(this.chunks, this.size).toString('utf8');
    if (!this.dropped) return text;
    const newline = text.indexOf('\n');
    return newline === -1 ? text : text.slice(newline + 1);
  }
}
