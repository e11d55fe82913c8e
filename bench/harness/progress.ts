/** A progress bar on stderr. On a terminal it redraws in place; elsewhere it prints every 10%. */
export class Progress {
  readonly #total: number;
  readonly #label: string;
  readonly #tty: boolean;
  readonly #enabled: boolean;
  #done = 0;
  #lastDecile = -1;
  #started = performance.now();

  constructor(label: string, total: number, enabled = true) {
    this.#label = label;
    this.#total = Math.max(1, total);
    this.#tty = Boolean(process.stderr.isTTY);
    this.#enabled = enabled;
  }

  tick(count = 1, detail = ''): void {
    this.#done += count;
    if (!this.#enabled) return;
    const fraction = Math.min(1, this.#done / this.#total);
    if (this.#tty) {
      const width = 28;
      const filled = Math.round(fraction * width);
      process.stderr.write(
        `\r${this.#label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${detail}`.padEnd(100),
      );
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile !== this.#lastDecile) {
      this.#lastDecile = decile;
      process.stderr.write(`${this.#label}: ${decile * 10}% ${detail}\n`);
    }
  }

  finish(): void {
    if (!this.#enabled) return;
    const seconds = ((performance.now() - this.#started) / 1000).toFixed(1);
    if (this.#tty) process.stderr.write(`${`\r${this.#label}: done in ${seconds} s`.padEnd(100)}\n`);
    else process.stderr.write(`${this.#label}: done in ${seconds} s\n`);
  }
}
