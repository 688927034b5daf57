// Errors in what the user gave us (a file, a field, a setting, a plan that cannot fit): the CLI
// prints their message as one line, without a stack (cli/main.ts's describeFailure). Every such
// error extends InputError; the message names the file and the field, so it needs nothing more.

/** Bad input, explained by its message. Subclasses say which kind; the name stays "InputError". */
export class InputError extends Error {
  override name = "InputError";
}

/** A checkpoint we cannot read (the file, and the field or tensor, named in the message). */
export class CheckpointError extends InputError {}

/** A tokenizer file we cannot read: not JSON, not a tokenizer of a kind we know, or corrupt (named in the message). */
export class TokenizerFileError extends InputError {}

/**
 * A file we could not write (a directory in the way, a read-only file, a full disk): the message
 * names the path and the reason, which the user fixes. Thrown by io/atomic.ts, the one writer.
 */
export class OutputError extends InputError {}
