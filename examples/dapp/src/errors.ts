/** Exit codes, the same as the `veristream` command line's (docs/cli.md). */
export const EXIT = {
  ok: 0,
  mismatch: 1, // a check ran and failed: a root, a CID or a proof does not match the chain
  usage: 2, // bad arguments or input, a refused transaction
  notFound: 3, // nothing verified, no such epoch, device, reading or account
  unreachable: 4, // the chain node or the IPFS node does not answer
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure reported in one line with its exit code. */
export class DappError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = "DappError";
  }
}
