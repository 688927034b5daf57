// A failure of one comparison or one prompt, not of the run: a judge prompt longer than the model's
// context (a local model's, or a server's 400 context_length_exceeded). The commands record it with
// the item's file:line and go on, as they do when a retryable error outlasts the retries.
export class ItemFailure extends Error {}
