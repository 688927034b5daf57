// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with the matching status,
// so clients (the openai package's APIError subclasses) read them as they read OpenAI's own.
import type { z } from "zod";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status >= 500 ? "server_error" : "invalid_request_error",
  ) {
    super(message);
  }

  get body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** The first problem zod found, naming its field as OpenAI's `param`. */
export function invalidBody(error: z.ZodError): ApiError {
  const issue = error.issues[0]!;
  if (issue.code === "unrecognized_keys") return new ApiError(400, `Unrecognized request argument supplied: ${issue.keys.join(", ")}`);
  const param = issue.path.length > 0 ? issue.path.map(String).join(".") : null;
  return new ApiError(400, param ? `${param}: ${issue.message}` : issue.message, param);
}
