/** A checkpoint we cannot read (the file, and the field or tensor, named in the message); the CLI prints it without a stack. */
export class CheckpointError extends Error {
  override name = "InputError";
}
